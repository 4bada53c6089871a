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
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// artifactDir holds accepted artifacts, one file per SHA-256.
func (s *Server) artifactDir() string { return filepath.Join(s.opts.DataDir, "artifacts") }

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
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	limits := artifact.DefaultLimits
	body := http.MaxBytesReader(w, r.Body, limits.MaxSize+1<<20)
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
			if tmp, err = os.CreateTemp(s.artifactDir(), ".upload-*"); err != nil {
				httpjson.Error(w, http.StatusInternalServerError, err.Error())
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
	info, err := artifact.Check(tmp, size, wantSHA, limits, s.vulns)
	var refusal *artifact.Error
	if errors.As(err, &refusal) {
		httpjson.Error(w, refusal.Status, refusal.Msg)
		return
	}
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	if err := tmp.Sync(); err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	final := filepath.Join(s.artifactDir(), info.SHA256)
	if _, err := os.Stat(final); err != nil {
		if err := os.Rename(tmp.Name(), final); err != nil {
			httpjson.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
	}
	a := store.Artifact{Tenant: t.Name, App: app, SHA256: info.SHA256, Size: info.Size, MainClass: info.MainClass, SpringBoot: info.SpringBoot, Uploaded: time.Now().UTC()}
	added, err := s.store.AddArtifact(a)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
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
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	if as == nil {
		as = []store.Artifact{}
	}
	httpjson.Write(w, http.StatusOK, as)
}

func humanBytes(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
