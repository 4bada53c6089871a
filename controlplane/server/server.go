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
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/artifact"
	"github.com/cameleer/cameleer/controlplane/ca"
	"github.com/cameleer/cameleer/controlplane/deployments"
	"github.com/cameleer/cameleer/controlplane/enrollment"
	"github.com/cameleer/cameleer/controlplane/environments"
	"github.com/cameleer/cameleer/controlplane/netguard"
	"github.com/cameleer/cameleer/controlplane/replay"
	"github.com/cameleer/cameleer/controlplane/runners"
	"github.com/cameleer/cameleer/controlplane/secrets"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/controlplane/telemetry"
	"github.com/cameleer/cameleer/controlplane/telemetry/clickhouse"
	"github.com/cameleer/cameleer/controlplane/telemetry/embedded"
	"github.com/cameleer/cameleer/internal/atomicfile"
	"github.com/cameleer/cameleer/internal/downloads"
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
	// MaxConns caps the connections open at once, tunnels included (0:
	// three quarters of the process's file limit, at most 65536): past it,
	// new ones wait in the kernel's backlog.
	MaxConns int
	// IdleTimeout closes an API connection that carried no request for so
	// long (0: 2 minutes).
	IdleTimeout time.Duration
	// ReadTimeout bounds how long a request's head and a JSON body may
	// take to arrive (0: 30 s); an upload gets as long as it keeps coming.
	ReadTimeout time.Duration
	// Limits bound what a tenant and its runners can make the control
	// plane keep and do; zero fields take DefaultLimits'.
	Limits Limits
	// RotateAdminToken makes a new admin token, replacing every other
	// one, and returns it from New as on a first start.
	RotateAdminToken bool
	// Telemetry stores what the agents see (nil: ClickHouse when
	// TelemetryClickHouse is set, else the embedded store in the data
	// dir's telemetry directory). The server closes it.
	Telemetry telemetry.Store
	// TelemetryClickHouse is a ClickHouse server's HTTP interface,
	// http(s)://[USER[:PASSWORD]@]HOST:PORT[/DATABASE], to keep telemetry in.
	TelemetryClickHouse string
	// TelemetryRetention is how long telemetry is kept (0: 7 days).
	TelemetryRetention time.Duration
	// RunnerBinary is the cameleer binary served to hosts that install
	// with install.sh ("": none; /downloads/ answers 404).
	RunnerBinary string
	Log          *slog.Logger
}

// Timeouts of every connection, beside Options' IdleTimeout and
// ReadTimeout: each write must be taken within writeTimeout, however long
// the whole answer streams.
const (
	handshakeTimeout  = 10 * time.Second
	readHeaderTimeout = 10 * time.Second
	writeTimeout      = 30 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Server is a control plane.
type Server struct {
	opts    Options
	log     *slog.Logger
	store   *store.Store
	ca      *ca.CA
	tlsCert *serving
	// installs serves the runner binary to install.sh.
	installs *downloads.Service
	vulns    *artifact.VulnDB
	secrets  *secrets.Box
	metrics  *metrics
	http     *http.Server

	// The services the API maps to.
	runners      *runners.Hub
	enrollment   *enrollment.Service
	deployments  *deployments.Service
	environments *environments.Service
	telemetry    *telemetry.Service
	replays      *replay.Service

	proxyPaths *http.ServeMux
	// downloads bound the artifacts being sent to runners at once, checks
	// the uploads being checked.
	downloads, checks slots
}

// AdminTokenFile is where the bootstrap admin token is written once.
func AdminTokenFile(dataDir string) string { return filepath.Join(dataDir, "admin.token") }

// New opens the control plane's state, making its CA, serving certificate
// and bootstrap admin token on first start. The admin token is returned
// only on that first start.
func New(opts Options) (*Server, string, error) {
	dl, err := downloads.New(context.Background(), opts.RunnerBinary)
	if err != nil {
		return nil, "", fmt.Errorf("the runner binary to serve: %w", err)
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("data dir: %w", err)
	}
	statePath, pki := filepath.Join(opts.DataDir, "state.db"), filepath.Join(opts.DataDir, "pki")
	// What a killed control plane was writing (a key, an upload) is of no
	// use: the write was never acknowledged.
	for _, dir := range []string{opts.DataDir, pki, filepath.Join(opts.DataDir, "artifacts")} {
		n, err := atomicfile.RemoveTemps(dir)
		if err != nil {
			return nil, "", err
		}
		if n > 0 {
			opts.Log.Info("removed temporary files left by an earlier run", "dir", dir, "files", n)
		}
	}
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
	if opts.MaxConns == 0 {
		opts.MaxConns = defaultMaxConns()
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 2 * time.Minute
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	opts.Limits = opts.Limits.withDefaults()
	s := &Server{opts: opts, log: opts.Log, store: st, metrics: newMetrics(), installs: dl,
		downloads: make(slots, opts.Limits.ArtifactDownloads), checks: make(slots, maxChecks), proxyPaths: proxyPaths()}
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
	s.runners = runners.New(runners.Options{Store: st, Log: s.log, HTTPServer: s.httpServer,
		Listen: func(l net.Listener) net.Listener { return writeDeadlines{l} }})
	s.metrics.reg.MustRegister(s.runners.Collectors()...)
	s.enrollment = enrollment.New(enrollment.Options{Store: st, CA: s.ca, Anchor: func() *x509.Certificate { return s.tlsCert.anchor },
		URL: opts.URL, Lifetime: opts.RunnerCertLifetime, MaxTokens: opts.Limits.RunnerTokens, Log: s.log})
	s.deployments = deployments.New(deployments.Options{Store: st, Runners: s.runners, Secrets: s.secrets, Keep: opts.Limits.Deployments, Log: s.log})
	s.environments = environments.New(environments.Options{Store: st, Runners: s.runners, Secrets: s.secrets, Log: s.log})
	if s.opts.Telemetry == nil {
		if s.opts.Telemetry, err = s.openTelemetry(); err != nil {
			st.Close()
			return nil, "", fmt.Errorf("open the telemetry store: %w", err)
		}
	}
	// The telemetry service is made next; a bulk replay lists through it once the server serves.
	exchanges := func(ctx context.Context, q telemetry.ExchangeQuery) (telemetry.ExchangePage, error) {
		return s.telemetry.Exchanges(ctx, q)
	}
	if s.replays, err = replay.New(replay.Options{Store: st, Runners: s.runners, Log: s.log, Exchanges: exchanges}); err != nil {
		st.Close()
		return nil, "", err
	}
	s.telemetry = telemetry.New(telemetry.Options{Store: s.opts.Telemetry, Log: s.log,
		Retention: s.retention, Originals: s.replays.Note})
	s.metrics.reg.MustRegister(s.telemetry.Collectors()...)
	s.http = s.httpServer(s.routes())
	return s, admin, nil
}

// openTelemetry opens the store Options name.
func (s *Server) openTelemetry() (telemetry.Store, error) {
	if s.opts.TelemetryClickHouse == "" {
		return embedded.Open(filepath.Join(s.opts.DataDir, "telemetry"), s.log)
	}
	u, err := url.Parse(s.opts.TelemetryClickHouse)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ClickHouse URL %q: want http(s)://[USER[:PASSWORD]@]HOST:PORT[/DATABASE]", s.opts.TelemetryClickHouse)
	}
	o := clickhouse.Options{URL: u.Scheme + "://" + u.Host, Database: strings.Trim(u.Path, "/"), User: u.User.Username()}
	o.Password, _ = u.User.Password()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return clickhouse.Open(ctx, o)
}

// retention is how long a tenant's telemetry is kept.
func (s *Server) retention(tenant string) time.Duration {
	if t, err := s.store.Tenant(tenant); err == nil && t.RetentionDays > 0 {
		return time.Duration(t.RetentionDays) * 24 * time.Hour
	}
	return s.opts.TelemetryRetention
}

// httpServer serves h with the timeouts every connection gets.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: min(readHeaderTimeout, s.opts.ReadTimeout), ReadTimeout: s.opts.ReadTimeout,
		IdleTimeout: s.opts.IdleTimeout, MaxHeaderBytes: maxHeaderBytes,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
}

// defaultMaxConns leaves a quarter of the file limit to what else the
// control plane opens: its state, artifacts being served, logs.
func defaultMaxConns() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<20 {
		return 1 << 16
	}
	return min(max(int(lim.Cur)*3/4-16, 16), 1<<16)
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

// bootstrapAdmin makes the admin token on first start, or a new one that
// replaces every other with RotateAdminToken, and writes it to admin.token
// (0600). The file is written first and the store changed in one
// transaction after: a start cut short anywhere leaves either no token
// made, or the one in the file.
func (s *Server) bootstrapAdmin() (string, error) {
	done, err := s.store.Meta("admin-token-created")
	if err != nil || done != "" && !s.opts.RotateAdminToken {
		return "", err
	}
	tok, err := newAPIToken()
	if err != nil {
		return "", err
	}
	if _, err := atomicfile.WriteFile(AdminTokenFile(s.opts.DataDir), []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	now := time.Now().UTC()
	if err := s.store.SetAdminToken(store.APIToken{Hash: api.HashSecret([]byte(tok)), Created: now}, now.Format(time.RFC3339)); err != nil {
		return "", fmt.Errorf("store admin token: %w", err)
	}
	if done != "" {
		s.log.Info("admin token rotated: every earlier admin token is revoked", "file", AdminTokenFile(s.opts.DataDir))
	}
	return tok, nil
}

// CAHash is the SHA-256 runners pin: of the CA, or with a serving
// certificate of another CA, of the root its chain ends in.
func (s *Server) CAHash() [32]byte { return s.enrollment.CAHash() }

// Close closes the state file.
func (s *Server) Close() error { return errors.Join(s.opts.Telemetry.Close(), s.store.Close()) }

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
			if _, err := s.runners.RunnerFor(cs.PeerCertificates[0]); err != nil {
				s.log.Warn("runner certificate refused", "err", err, "remote", remote)
				return err
			}
			return nil
		},
	}
}

// Serve answers on l (plain TCP; TLS is done here) until ctx is done.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	httpConns := newConnListener(l.Addr())
	go func() {
		<-ctx.Done()
		l.Close()
		httpConns.Close()
		s.runners.CloseAll()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.http.Shutdown(shutdownCtx)
	}()
	go s.http.Serve(httpConns)
	// Retention works on the telemetry store, which Close closes: done
	// before Serve returns.
	expiring := make(chan struct{})
	go func() { s.telemetry.Run(ctx); close(expiring) }()
	defer func() { <-expiring }()
	// Bulk replays write the state store: done before Serve returns too.
	replaying := make(chan struct{})
	go func() { s.replays.Run(ctx); close(replaying) }()
	defer func() { <-replaying }()
	cfg := s.tlsConfig()
	guarded := netguard.Listen(l, s.opts.MaxConns, s.log)
	// Tunnels save what they saw of their runner as they end: wait for
	// them, so the state file is closed after the last write.
	defer s.runners.Wait()
	for {
		raw, err := guarded.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go func() {
			wd := netguard.NewWriteDeadline(raw, writeTimeout)
			s.handshake(ctx, tls.Server(wd, cfg), wd, httpConns)
		}()
	}
}

// handshake finishes TLS and hands the connection to the tunnel or to HTTP
// by the protocol it chose.
func (s *Server) handshake(ctx context.Context, c *tls.Conn, wd *netguard.WriteDeadline, httpConns *connListener) {
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := c.HandshakeContext(hctx); err != nil {
		s.metrics.handshakeFailures.Inc()
		s.log.Debug("handshake failed", "remote", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	cs := c.ConnectionState()
	if cs.NegotiatedProtocol == tunnel.ALPN {
		// The tunnel bounds its own writes, and keeps the link alive.
		wd.Off()
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
	handshakeFailures prometheus.Counter
}

// newMetrics makes the control plane's own metrics; the services register
// theirs beside them.
func newMetrics() *metrics {
	m := &metrics{
		reg:               prometheus.NewRegistry(),
		handshakeFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "cameleer_tls_handshake_failures_total", Help: "TLS handshakes refused or failed."}),
	}
	m.reg.MustRegister(m.handshakeFailures)
	return m
}
