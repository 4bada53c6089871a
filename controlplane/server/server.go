// Package server is the control plane: one TLS port for the API and for
// runners' tunnels (chosen by ALPN), tenants and their tokens, runner
// registration by one-time token, and the runners' tunnels.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/artifact"
	"github.com/cameleer/cameleer/controlplane/ca"
	"github.com/cameleer/cameleer/controlplane/secrets"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/atomicfile"
	"github.com/cameleer/cameleer/tunnel"
)

// Options configure a control plane.
type Options struct {
	DataDir string
	// URL is how runners reach the control plane (https://HOST:PORT); it
	// goes into one-time tokens and install commands.
	URL string
	// SANs name the serving certificate, beside localhost and 127.0.0.1.
	SANs []string
	// TLSCert (the chain, leaf first, up to its root) and TLSKey replace
	// the serving certificate made by the CA; runners then pin that root.
	TLSCert, TLSKey string
	// RunnerCertLifetime is how long runner certificates last (0: 7 days).
	RunnerCertLifetime time.Duration
	Log                *slog.Logger
}

// Server is a control plane.
type Server struct {
	opts    Options
	log     *slog.Logger
	store   *store.Store
	ca      *ca.CA
	tlsCert *serving
	vulns   *artifact.VulnDB
	secrets *secrets.Box
	metrics *metrics
	http    *http.Server

	buffers proxyBuffers

	mu      sync.Mutex
	tunnels map[string]*runnerConn // by runner id
	serving sync.WaitGroup         // connections being handled
}

// AdminTokenFile is where the bootstrap admin token is written once.
func AdminTokenFile(dataDir string) string { return filepath.Join(dataDir, "admin.token") }

// New opens the control plane's state, making its CA, serving certificate
// and bootstrap admin token on first start. The admin token is returned
// only on that first start.
func New(opts Options) (*Server, string, error) {
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("data dir: %w", err)
	}
	statePath, pki := filepath.Join(opts.DataDir, "state.db"), filepath.Join(opts.DataDir, "pki")
	_, caErr := os.Stat(filepath.Join(pki, "ca.crt"))
	if fi, err := os.Stat(statePath); caErr == nil && (errors.Is(err, os.ErrNotExist) || err == nil && fi.Size() == 0) {
		return nil, "", fmt.Errorf("%s is missing or empty, but %s holds this control plane's CA: this is not a first start; restore state.db from a backup (a new one would forget every tenant, token and runner)", statePath, pki)
	}
	st, err := store.Open(statePath)
	if errors.Is(err, store.ErrDamaged) && errors.Is(caErr, os.ErrNotExist) {
		return nil, "", fmt.Errorf("%w; no CA was made yet, so if this is a first start that was cut short, remove %s and start again", err, statePath)
	}
	if err != nil {
		return nil, "", err
	}
	if opts.RunnerCertLifetime == 0 {
		opts.RunnerCertLifetime = ca.DefaultRunnerLifetime
	}
	s := &Server{opts: opts, log: opts.Log, store: st, tunnels: map[string]*runnerConn{}, metrics: newMetrics()}
	if s.ca, err = s.loadCA(pki); err != nil {
		st.Close()
		return nil, "", err
	}
	if opts.TLSCert != "" {
		s.tlsCert, err = servingFromFiles(opts.TLSCert, opts.TLSKey, urlHost(opts.URL), s.log)
	} else {
		names := append([]string{"localhost", "127.0.0.1"}, opts.SANs...)
		// Runners reach the host in --url: it must be a name of the
		// certificate whether or not it is also a --san.
		if h := urlHost(opts.URL); h != "" && !slices.Contains(names, h) {
			names = append(names, h)
		}
		s.tlsCert, err = servingFromCA(s.ca, pki, names, s.log)
	}
	if err != nil {
		st.Close()
		return nil, "", fmt.Errorf("serving certificate: %w", err)
	}
	// An updated list of vulnerable libraries can be dropped in offline.
	if s.vulns, err = artifact.LoadVulnDB(filepath.Join(opts.DataDir, "vulnerable.json")); err != nil {
		st.Close()
		return nil, "", err
	}
	if s.secrets, err = s.openSecrets(filepath.Join(opts.DataDir, "secrets.key")); err != nil {
		st.Close()
		return nil, "", err
	}
	admin, err := s.bootstrapAdmin()
	if err != nil {
		st.Close()
		return nil, "", err
	}
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	return s, admin, nil
}

// loadCA reads the CA, making it on first start only: every runner pins
// it, so a control plane that lost it must say so, not make another.
func (s *Server) loadCA(dir string) (*ca.CA, error) {
	made, err := s.store.Meta("ca")
	if err != nil {
		return nil, err
	}
	c, err := ca.Load(dir)
	switch {
	case errors.Is(err, os.ErrNotExist) && made == "" && !s.started():
		if c, err = ca.Create(dir); err != nil {
			return nil, fmt.Errorf("make CA: %w", err)
		}
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: ca.crt or ca.key is missing; restore both from a backup (every runner pins this CA: a new one would cut them all off)", dir)
	case err != nil:
		return nil, err
	}
	sum := c.Hash()
	hash := hex.EncodeToString(sum[:])
	switch made {
	case "":
		// First start, or a state file from before the CA was recorded.
		return c, s.store.SetMeta("ca", hash)
	case hash:
		return c, nil
	default:
		return nil, fmt.Errorf("%s holds CA %.16s, not this control plane's CA %.16s: restore the original ca.crt and ca.key", dir, hash, made)
	}
}

// started says whether an earlier start got as far as making the admin
// token: the CA was made before it.
func (s *Server) started() bool {
	done, err := s.store.Meta("admin-token-created")
	return err != nil || done != ""
}

// openSecrets opens the key environments' secrets are sealed with, making
// it on first start only: what was sealed with a lost key cannot be read.
func (s *Server) openSecrets(path string) (*secrets.Box, error) {
	made, err := s.store.Meta("secrets-key")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		sealed, err := s.anySecrets()
		if err != nil {
			return nil, err
		}
		if made != "" || sealed {
			return nil, fmt.Errorf("%s is missing: restore it from a backup (the environments' secrets are sealed with it)", path)
		}
	}
	box, err := secrets.Open(path)
	if err != nil || made != "" {
		return box, err
	}
	return box, s.store.SetMeta("secrets-key", time.Now().UTC().Format(time.RFC3339))
}

// anySecrets says whether any environment holds a sealed secret.
func (s *Server) anySecrets() (bool, error) {
	ts, err := s.store.Tenants()
	if err != nil {
		return false, err
	}
	for _, t := range ts {
		envs, err := s.store.Environments(t.Name)
		if err != nil {
			return false, err
		}
		for _, e := range envs {
			if len(e.Secrets) > 0 {
				return true, nil
			}
		}
	}
	return false, nil
}

// bootstrapAdmin makes the admin token on first start and writes it to
// admin.token (0600).
func (s *Server) bootstrapAdmin() (string, error) {
	done, err := s.store.Meta("admin-token-created")
	if err != nil || done != "" {
		return "", err
	}
	tok, err := newAPIToken()
	if err != nil {
		return "", err
	}
	if _, err := atomicfile.WriteFile(AdminTokenFile(s.opts.DataDir), []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if err := s.store.CreateAPIToken(store.APIToken{Hash: api.HashSecret([]byte(tok)), Created: time.Now()}); err != nil {
		return "", err
	}
	return tok, s.store.SetMeta("admin-token-created", time.Now().UTC().Format(time.RFC3339))
}

// CAHash is the SHA-256 runners pin: of the CA, or with a serving
// certificate of another CA, of the root its chain ends in.
func (s *Server) CAHash() [32]byte { return s.tlsCert.anchorHash() }

// Close closes the state file.
func (s *Server) Close() error { return s.store.Close() }

func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.tlsCert.get,
		NextProtos:     []string{tunnel.ALPN, "http/1.1"},
		ClientCAs:      s.ca.Pool(),
		ClientAuth:     tls.VerifyClientCertIfGiven,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			for _, p := range hello.SupportedProtos {
				if p == tunnel.ALPN {
					return s.tunnelTLSConfig(hello.Conn.RemoteAddr()), nil
				}
			}
			return nil, nil
		},
	}
}

// tunnelTLSConfig: TLS 1.3 only, a client certificate of a runner that is
// registered, not revoked, and holds exactly that certificate.
func (s *Server) tunnelTLSConfig(remote net.Addr) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: s.tlsCert.get,
		NextProtos:     []string{tunnel.ALPN},
		ClientCAs:      s.ca.Pool(),
		ClientAuth:     tls.RequireAndVerifyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			if _, err := s.runnerFor(cs.PeerCertificates[0]); err != nil {
				s.log.Warn("runner certificate refused", "err", err, "remote", remote)
				return err
			}
			return nil
		},
	}
}

// runnerFor is the registered, unrevoked runner a certificate belongs to.
func (s *Server) runnerFor(cert *x509.Certificate) (store.Runner, error) {
	r, err := s.store.Runner(cert.Subject.CommonName)
	if err != nil {
		return r, fmt.Errorf("runner %q is not registered", cert.Subject.CommonName)
	}
	if r.Revoked {
		return r, fmt.Errorf("runner %s is revoked", r.ID)
	}
	if serial := cert.SerialNumber.String(); serial != r.Serial && serial != r.PrevSerial {
		return r, fmt.Errorf("runner %s: certificate %s was replaced", r.ID, cert.SerialNumber)
	}
	return r, nil
}

// Serve answers on l (plain TCP; TLS is done here) until ctx is done.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	httpConns := newConnListener(l.Addr())
	go func() {
		<-ctx.Done()
		l.Close()
		httpConns.Close()
		s.closeTunnels()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.http.Shutdown(shutdownCtx)
	}()
	go s.http.Serve(httpConns)
	cfg := s.tlsConfig()
	// Tunnels save what they saw of their runner as they end: wait for
	// them, so the state file is closed after the last write.
	defer s.serving.Wait()
	for {
		raw, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			s.handshake(ctx, tls.Server(raw, cfg), httpConns)
		}()
	}
}

// handshake finishes TLS and hands the connection to the tunnel or to HTTP
// by the protocol it chose.
func (s *Server) handshake(ctx context.Context, c *tls.Conn, httpConns *connListener) {
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := c.HandshakeContext(hctx); err != nil {
		s.metrics.handshakeFailures.Inc()
		s.log.Debug("handshake failed", "remote", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	cs := c.ConnectionState()
	if cs.NegotiatedProtocol == tunnel.ALPN {
		s.serveTunnel(ctx, c, cs.PeerCertificates[0])
		return
	}
	httpConns.push(c)
}

// connListener feeds connections that finished their handshake to the HTTP
// server.
type connListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

type metrics struct {
	reg               *prometheus.Registry
	connected         prometheus.Gauge
	streams           prometheus.Counter
	proxiedBytes      prometheus.Counter
	handshakeFailures prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg:               prometheus.NewRegistry(),
		connected:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "cameleer_runners_connected", Help: "Runners with an open tunnel."}),
		streams:           prometheus.NewCounter(prometheus.CounterOpts{Name: "cameleer_tunnel_streams_total", Help: "Streams opened to runners."}),
		proxiedBytes:      prometheus.NewCounter(prometheus.CounterOpts{Name: "cameleer_tunnel_proxied_bytes_total", Help: "Response bytes proxied from runners."}),
		handshakeFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "cameleer_tls_handshake_failures_total", Help: "TLS handshakes refused or failed."}),
	}
	m.reg.MustRegister(m.connected, m.streams, m.proxiedBytes, m.handshakeFailures)
	return m
}
