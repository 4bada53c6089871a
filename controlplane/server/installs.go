package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cameleer/cameleer/installer"
	"github.com/cameleer/cameleer/internal/certs"
	"github.com/cameleer/cameleer/internal/downloads"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// installRoutes serve what `curl -sfL https://CP/install.sh | sh -s -
// --token OTT` fetches, to anyone: none of it is secret. install.sh checks
// /ca.crt against the token's hash, and the binary against the SHA-256
// published beside it, fetched over TLS pinned to that CA.
func (s *Server) installRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /install.sh", func(w http.ResponseWriter, r *http.Request) {
		installer.ServeScript(w, r, s.installs)
	})
	mux.HandleFunc("GET /ca.crt", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(certs.CertPEM(s.tlsCert.anchor))
	})
	mux.HandleFunc("GET /downloads/cameleer.json", func(w http.ResponseWriter, r *http.Request) {
		if bin, ok := s.runnerBinary(w, r); ok {
			httpjson.Write(w, http.StatusOK, bin)
		}
	})
	mux.HandleFunc("GET /downloads/cameleer.sha256", func(w http.ResponseWriter, r *http.Request) {
		if bin, ok := s.runnerBinary(w, r); ok {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "%s  cameleer\n", bin.SHA256)
		}
	})
	mux.HandleFunc("GET /downloads/cameleer", s.serveRunnerBinary)
}

// serveRunnerBinary answers the binary, to install.sh and, through their
// tunnels, to runners upgrading.
func (s *Server) serveRunnerBinary(w http.ResponseWriter, r *http.Request) {
	// Each download holds a file, as an artifact's does.
	if !s.downloads.take(r.Context()) {
		return
	}
	defer s.downloads.give()
	f, bin, err := s.installs.Open(r.Context())
	if err != nil {
		s.binaryError(w, r, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+bin.SHA256+`"`)
	w.Header().Set("X-Cameleer-Version", bin.Version)
	// The ETag, not a time, tells a resumed download the file changed.
	http.ServeContent(w, r, "cameleer", time.Time{}, f)
}

// runnerBinary describes the binary served, or answers why there is none.
func (s *Server) runnerBinary(w http.ResponseWriter, r *http.Request) (downloads.Binary, bool) {
	f, bin, err := s.installs.Open(r.Context())
	if err != nil {
		s.binaryError(w, r, err)
		return bin, false
	}
	f.Close()
	return bin, true
}

func (s *Server) binaryError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, downloads.ErrNone) {
		httpjson.Error(w, http.StatusNotFound, err.Error())
		return
	}
	s.fail(w, r, err)
}
