package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/artifact"
	"github.com/cameleer/cameleer/controlplane/netguard"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/atomicfile"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// artifactDir holds accepted artifacts, one file per SHA-256.
func (s *Server) artifactDir() string { return filepath.Join(s.opts.DataDir, "artifacts") }

// maxChecks is how many uploads are checked at once. A check reads the whole
// upload and may decompress its nested JARs: more at once would only share
// the same cores and disk, and leave less to the runners' traffic.
const maxChecks = 2

// uploadArtifact takes a multipart upload (field "file", optional field
// "sha256"), checks it, and stores it by content: the same bytes uploaded
// twice are one file. A refused upload leaves nothing behind.
func (s *Server) uploadArtifact(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	app := r.PathValue("app")
	if err := api.ValidName(app); err != nil {
		httpjson.Error(w, http.StatusBadRequest, "app "+err.Error())
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		httpjson.Error(w, http.StatusBadRequest, "send the artifact as multipart/form-data with a file field")
		return
	}
	if err := os.MkdirAll(s.artifactDir(), 0o700); err != nil {
		s.fail(w, r, err)
		return
	}
	// A tenant at its quota is told before anything is read.
	if err := s.store.ArtifactRoom(t.Name, 0, s.opts.Limits.artifactQuota()); err != nil {
		s.fail(w, r, err)
		return
	}
	limits := artifact.DefaultLimits
	limits.TempDir = s.artifactDir() // compressed nested JARs
	// The upload may take as long as it keeps coming: 64 KiB every read
	// timeout at least, so a trickle does not hold a connection for hours.
	rc := http.NewResponseController(w)
	progress := &netguard.Progress{R: r.Body, Extend: rc.SetReadDeadline, Window: s.opts.ReadTimeout, Step: 64 << 10}
	if err := progress.Start(); err != nil {
		s.fail(w, r, err)
		return
	}
	body := http.MaxBytesReader(w, io.NopCloser(progress), limits.MaxSize+1<<20)
	mr := multipart.NewReader(body, params["boundary"])
	var tmp *os.File
	var size int64
	var wantSHA string
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				httpjson.Error(w, http.StatusRequestEntityTooLarge, "the upload is over the limit of "+humanBytes(limits.MaxSize))
				return
			}
			httpjson.Error(w, http.StatusBadRequest, "read upload: "+err.Error())
			return
		}
		switch part.FormName() {
		case "sha256":
			b, _ := io.ReadAll(io.LimitReader(part, 128))
			wantSHA = strings.TrimSpace(string(b))
		case "file":
			if tmp != nil {
				httpjson.Error(w, http.StatusBadRequest, "one file per upload")
				return
			}
			if tmp, err = os.CreateTemp(s.artifactDir(), atomicfile.TempPattern("upload")); err != nil {
				s.fail(w, r, err)
				return
			}
			size, err = io.Copy(tmp, io.LimitReader(part, limits.MaxSize+1))
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) || size > limits.MaxSize {
				httpjson.Error(w, http.StatusRequestEntityTooLarge, "the artifact is over the limit of "+humanBytes(limits.MaxSize))
				return
			}
			if err != nil {
				httpjson.Error(w, http.StatusBadRequest, "read upload: "+err.Error())
				return
			}
		}
		part.Close()
	}
	if tmp == nil {
		httpjson.Error(w, http.StatusBadRequest, "no file field in the upload")
		return
	}
	if !s.checks.take(r.Context()) {
		httpjson.Error(w, http.StatusServiceUnavailable, "gave up waiting to check the artifact: "+r.Context().Err().Error())
		return
	}
	info, err := artifact.Check(tmp, size, wantSHA, limits, s.vulns)
	s.checks.give()
	var refusal *artifact.Error
	if errors.As(err, &refusal) {
		s.log.Info("artifact refused", "tenant", t.Name, "app", app, "size", size, "status", refusal.Status, "reason", refusal.Msg)
		httpjson.Error(w, refusal.Status, refusal.Msg)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := tmp.Sync(); err != nil {
		s.fail(w, r, err)
		return
	}
	a := store.Artifact{Tenant: t.Name, App: app, SHA256: info.SHA256, Size: info.Size, MainClass: info.MainClass, SpringBoot: info.SpringBoot, Uploaded: time.Now().UTC()}
	if err := s.store.ArtifactRoom(t.Name, info.Size, s.opts.Limits.artifactQuota()); err != nil {
		s.fail(w, r, err)
		return
	}
	final := filepath.Join(s.artifactDir(), info.SHA256)
	_, err = os.Stat(final)
	created := err != nil
	if created {
		if err := os.Rename(tmp.Name(), final); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	added, err := s.store.AddArtifact(a, s.opts.Limits.artifactQuota())
	if err != nil {
		// Another upload of the tenant's took the room meanwhile, say: a
		// file no record names goes.
		if created {
			os.Remove(final)
		}
		s.fail(w, r, err)
		return
	}
	code := http.StatusCreated
	if !added {
		code = http.StatusOK
	}
	s.log.Info("artifact accepted", "tenant", t.Name, "app", app, "sha256", info.SHA256, "size", info.Size, "new", added)
	httpjson.Write(w, code, a)
}

func (s *Server) listArtifacts(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	as, err := s.store.Artifacts(t.Name, r.PathValue("app"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if as == nil {
		as = []store.Artifact{}
	}
	httpjson.Write(w, http.StatusOK, as)
}

func humanBytes(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
