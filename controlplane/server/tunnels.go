package server

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/certs"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/tunnel"
)

// runnerConn is a connected runner.
type runnerConn struct {
	id string
	// serial is the certificate the runner connected with.
	serial  string
	session *tunnel.Session
	proxy   *httputil.ReverseProxy
	// client calls the runner's local API.
	client *http.Client

	// lastSeen and version change with every heartbeat; they are kept here
	// and written to the store when the runner disconnects, not on every
	// heartbeat (a thousand runners would be a hundred fsyncs a second).
	mu       sync.Mutex
	lastSeen time.Time
	version  string
}

func (rc *runnerConn) seen(version string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.lastSeen = time.Now().UTC()
	if version != "" {
		rc.version = version
	}
}

// enrollment is what a runner gets with a new certificate, when it
// registers and when it renews: the certificate and the root it trusts the
// control plane by.
func (s *Server) enrollment(r store.Runner, cert *x509.Certificate) api.EnrollResponse {
	return api.EnrollResponse{RunnerID: r.ID, Tenant: r.Tenant, Name: r.Name, Certificate: string(certs.CertPEM(cert)),
		CA: string(certs.CertPEM(s.tlsCert.anchor)), NotAfter: cert.NotAfter}
}

// serveTunnel runs one runner's tunnel until it ends: the runner's requests
// (heartbeats, renewals) are served here; the control plane's go the other
// way through proxy.
func (s *Server) serveTunnel(ctx context.Context, c net.Conn, cert *x509.Certificate) {
	r, err := s.runnerFor(cert)
	if err != nil {
		c.Close()
		return
	}
	serial := cert.SerialNumber.String()
	sess := tunnel.Server(c, s.log.With("runner", r.ID))
	rc := &runnerConn{id: r.ID, serial: serial, session: sess, lastSeen: time.Now().UTC(), version: r.Version}
	// A runner that connects with its renewed certificate holds it.
	s.retirePrevious(r.ID, serial)
	tr := &tunnel.Transport{Open: func(ctx context.Context) (net.Conn, error) {
		s.metrics.streams.Inc()
		return sess.Open(ctx, tunnel.KindHTTP)
	}}
	rc.client = &http.Client{Transport: tr}
	rc.proxy = &httputil.ReverseProxy{
		Transport:  tr,
		BufferPool: &s.buffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = &url.URL{Scheme: "http", Host: "runner", Path: "/" + pr.In.PathValue("path"), RawQuery: pr.In.URL.RawQuery}
			pr.Out.Host = "runner"
			// The caller's API token is for the control plane only.
			pr.Out.Header.Del("Authorization")
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Body = countingBody{resp.Body, s.metrics.proxiedBytes.Add}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			httpjson.Error(w, http.StatusBadGateway, "runner did not answer: "+err.Error())
		},
	}

	s.mu.Lock()
	if old := s.tunnels[r.ID]; old != nil {
		// A runner that reconnects before its old tunnel timed out.
		old.session.Close()
	}
	s.tunnels[r.ID] = rc
	s.mu.Unlock()
	s.metrics.connected.Inc()
	s.save(rc)
	s.log.Info("runner connected", "runner", r.ID, "tenant", r.Tenant, "remote", c.RemoteAddr())

	srv := &http.Server{Handler: s.runnerRoutes(rc), ReadHeaderTimeout: 30 * time.Second}
	go srv.Serve(sess.Listener())
	go s.keepDispatching(rc, r.Tenant)
	select {
	case <-sess.Done():
	case <-ctx.Done():
	}
	srv.Close()
	sess.Close()
	tr.CloseIdleConnections()
	s.mu.Lock()
	if s.tunnels[r.ID] == rc {
		delete(s.tunnels, r.ID)
	}
	s.mu.Unlock()
	s.metrics.connected.Dec()
	s.save(rc)
	s.log.Info("runner disconnected", "runner", r.ID)
}

// retirePrevious refuses the certificate a runner renewed from, once it
// shows (connecting with it, or in a heartbeat) that it holds the newest:
// until then a lost renewal answer must not lock it out.
func (s *Server) retirePrevious(id, held string) {
	// Read first: nearly always there is nothing to retire, which needs
	// no write.
	r, err := s.store.Runner(id)
	if err == nil && r.PrevSerial != "" && r.Serial == held {
		r, err = s.store.UpdateRunner(id, func(r *store.Runner) error {
			if r.Serial == held {
				r.PrevSerial = ""
			}
			return nil
		})
		if err == nil && r.PrevSerial == "" {
			s.log.Info("previous runner certificate retired", "runner", id, "holds", held)
		}
	}
	if err != nil {
		s.log.Warn("retire the previous certificate", "runner", id, "err", err)
	}
}

type countingBody struct {
	io.ReadCloser
	add func(float64)
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.add(float64(n))
	return n, err
}

// save writes what the control plane saw of a runner into the store.
func (s *Server) save(rc *runnerConn) {
	rc.mu.Lock()
	seen, version := rc.lastSeen, rc.version
	rc.mu.Unlock()
	_, err := s.store.UpdateRunner(rc.id, func(r *store.Runner) error {
		r.LastSeen, r.Version = seen, version
		return nil
	})
	if err != nil {
		s.log.Warn("save runner", "runner", rc.id, "err", err)
	}
}

// live is the connected runner with id, or nil.
func (s *Server) live(id string) *runnerConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tunnels[id]
}

func (s *Server) disconnect(id string) {
	s.mu.Lock()
	rc := s.tunnels[id]
	delete(s.tunnels, id)
	s.mu.Unlock()
	if rc != nil {
		rc.session.Close()
	}
}

func (s *Server) closeTunnels() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rc := range s.tunnels {
		rc.session.Close()
	}
}

// proxy forwards a request to the runner's local API through its tunnel.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, rn store.Runner) {
	rc := s.live(rn.ID)
	if rc == nil {
		httpjson.Error(w, http.StatusServiceUnavailable, "runner "+rn.ID+" is not connected")
		return
	}
	rc.proxy.ServeHTTP(w, r)
}

// runnerRoutes answer the runner through its tunnel; the tunnel's client
// certificate already says which runner it is.
func (s *Server) runnerRoutes(rc *runnerConn) http.Handler {
	id := rc.id
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.HeartbeatPath, func(w http.ResponseWriter, r *http.Request) {
		var hb api.Heartbeat
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&hb); err != nil {
			httpjson.Error(w, http.StatusBadRequest, err.Error())
			return
		}
		rc.seen(hb.Version)
		if hb.Certificate != "" {
			s.retirePrevious(id, hb.Certificate)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+api.RenewPath, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, api.MaxEnrollRequest))
		if err != nil {
			httpjson.Error(w, http.StatusBadRequest, err.Error())
			return
		}
		csr, err := api.ParseCSR(b)
		if err != nil {
			httpjson.Error(w, http.StatusBadRequest, err.Error())
			return
		}
		var resp api.EnrollResponse
		code := http.StatusForbidden
		_, err = s.store.UpdateRunner(id, func(rn *store.Runner) error {
			if rn.Revoked {
				return errors.New("revoked")
			}
			// The certificate the runner holds stays good until it shows
			// it stored the new one: the answer may be lost. It says which
			// one it holds (the tunnel may be older than a renewal it
			// stored); a runner that does not is taken to hold the one
			// this tunnel came with. One that names neither current
			// certificate is a renewal overtaken by a later one (the
			// runner gave up on it): it must not replace the later one.
			prev := rc.serial
			if held := r.URL.Query().Get("held"); held != "" {
				if held != rn.Serial && held != rn.PrevSerial {
					code = http.StatusConflict
					return fmt.Errorf("certificate %s is not this runner's current one: a later renewal took its place", held)
				}
				prev = held
			}
			if err := r.Context().Err(); err != nil {
				return fmt.Errorf("the runner gave up: %w", err)
			}
			cert, err := s.ca.SignRunner(csr.PublicKey, rn.ID, rn.Tenant, time.Now(), s.opts.RunnerCertLifetime)
			if err != nil {
				return err
			}
			rn.Serial, rn.NotAfter, rn.PrevSerial = cert.SerialNumber.String(), cert.NotAfter, prev
			resp = s.enrollment(*rn, cert)
			return nil
		})
		if err != nil {
			httpjson.Error(w, code, err.Error())
			return
		}
		s.log.Info("runner certificate renewed", "runner", id, "notAfter", resp.NotAfter)
		httpjson.Write(w, http.StatusOK, resp)
	})
	mux.HandleFunc("POST "+api.DeployReportPath+"{id}", func(w http.ResponseWriter, r *http.Request) { s.deploymentReport(rc, w, r) })
	mux.HandleFunc("GET "+api.ArtifactPath+"{sha}", func(w http.ResponseWriter, r *http.Request) { s.runnerArtifact(rc, w, r) })
	return mux
}

// proxyBuffers lends the runners' reverse proxies their copy buffers: each
// proxied answer would otherwise allocate 32 KiB for the collector to
// reclaim.
type proxyBuffers struct{ pool sync.Pool }

func (b *proxyBuffers) Get() []byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, 32<<10)
}

func (b *proxyBuffers) Put(p []byte) { b.pool.Put(&p) }
