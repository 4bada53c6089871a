package tunnelclient

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/internal/backoff"
	"github.com/cameleer/cameleer/internal/certs"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/tunnel"
	"github.com/cameleer/cameleer/version"
)

// Reconnect backoff and heartbeat timing.
const (
	minBackoff        = 500 * time.Millisecond
	maxBackoff        = 30 * time.Second
	heartbeatInterval = 10 * time.Second
)

// Options say what a Client connects as and what it serves.
type Options struct {
	Identity Identity
	// LocalAPI makes what answers the control plane's requests through the
	// tunnel, given a client to the control plane through whichever tunnel
	// is up (the routes call back: reports, artifacts). Run calls it once.
	LocalAPI func(controlPlane *http.Client) http.Handler
	// Engine says whether this runner runs the engine (for heartbeats).
	Engine bool
	Log    *slog.Logger
}

// Client keeps the runner's tunnel open.
type Client struct {
	opts Options

	mu        sync.Mutex
	session   *tunnel.Session // the current tunnel, nil while down
	changed   chan struct{}   // closed when session changes
	since     time.Time       // when the current tunnel came up, or the last went down
	lastError string          // why the last tunnel ended or failed
	refused   string          // the control plane's 426 on this tunnel
}

// New makes a client; Run connects it.
func New(o Options) *Client { return &Client{opts: o} }

// State is what a runner's tunnel is doing.
type State struct {
	Connected bool `json:"connected"`
	// Since is when the tunnel came up, or (not connected) when it last
	// went down; zero before the first attempt ended.
	Since time.Time `json:"since,omitzero"`
	// LastError says why the last tunnel ended or could not be made.
	LastError string `json:"lastError,omitempty"`
	// Refused is what the control plane says when it refuses this
	// runner's requests over a tunnel that is up: this runner speaks a
	// version of the runner API it no longer serves.
	Refused string `json:"refused,omitempty"`
}

// State is the tunnel's state now.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return State{Connected: c.session != nil, Since: c.since, LastError: c.lastError, Refused: c.refused}
}

// controlPlane is an HTTP client to the control plane through whichever
// tunnel is up when a request is made: a request made while the tunnel is
// down waits for the next one (or for its context).
func (c *Client) controlPlane() *http.Client {
	return &http.Client{Transport: versionTransport{&http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return c.openStream(ctx) },
		// A tunnel that went down takes its streams along; new ones go
		// through the next.
		DisableKeepAlives: true,
	}}}
}

// versionTransport says the runner's capability version in every request
// it makes of the control plane.
type versionTransport struct{ next http.RoundTripper }

func (t versionTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(api.VersionHeader, strconv.Itoa(api.Version))
	return t.next.RoundTrip(req)
}

// versioned says the runner's capability version in every answer of h.
func versioned(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.VersionHeader, strconv.Itoa(api.Version))
		h.ServeHTTP(w, r)
	})
}

func (c *Client) openStream(ctx context.Context) (net.Conn, error) {
	for {
		c.mu.Lock()
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		sess, changed := c.session, c.changed
		c.mu.Unlock()
		if sess != nil {
			return sess.Open(ctx, tunnel.KindHTTP)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("no tunnel to the control plane: %w", ctx.Err())
		}
	}
}

func (c *Client) setSession(s *tunnel.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.session, c.since = s, time.Now()
	if s != nil {
		c.refused = "" // said again if this tunnel is refused too
	}
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
}

// Run connects, and reconnects with jittered exponential backoff, until ctx
// is done.
func (c *Client) Run(ctx context.Context) error {
	local := c.opts.LocalAPI(c.controlPlane())
	retry := backoff.New(minBackoff, maxBackoff)
	for {
		start := time.Now()
		err := c.connectOnce(ctx, local)
		if ctx.Err() != nil {
			return nil
		}
		c.mu.Lock()
		if c.since.Before(start) {
			c.since = time.Now() // it never came up
		}
		c.lastError = err.Error()
		c.mu.Unlock()
		if time.Since(start) > maxBackoff {
			retry.Reset() // it was up for a while: start over
		}
		d := retry.Next()
		c.opts.Log.Warn("tunnel down; reconnecting", "err", err, "in", d.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

// connectOnce dials, serves the tunnel until it ends, and says why.
func (c *Client) connectOnce(ctx context.Context, local http.Handler) error {
	u, err := url.Parse(c.opts.Identity.URL)
	if err != nil {
		return err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	cfg, err := c.opts.Identity.tlsConfig(u.Hostname())
	if err != nil {
		return err
	}
	cfg.NextProtos = []string{tunnel.ALPN}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	raw, err := dial(dctx, host)
	if err != nil {
		return err
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(dctx); err != nil {
		raw.Close()
		return fmt.Errorf("handshake with %s: %w", host, err)
	}
	if conn.ConnectionState().NegotiatedProtocol != tunnel.ALPN {
		conn.Close()
		return fmt.Errorf("%s does not speak %s", host, tunnel.ALPN)
	}
	rec := &recordingConn{Conn: conn}
	sess := tunnel.Client(rec, c.opts.Log)
	defer sess.Close()
	// With TLS 1.3 the server judges the client certificate after the
	// client's handshake is done: a ping shows whether it was accepted.
	if _, err := sess.Ping(); err != nil {
		if rerr := rec.readErr(); rerr != nil && strings.Contains(rerr.Error(), "certificate") {
			return fmt.Errorf("the control plane refused this runner's certificate (revoked or replaced?): %w", rerr)
		}
		return fmt.Errorf("tunnel to %s: %w", host, err)
	}
	c.opts.Log.Info("tunnel up", "controlPlane", host, "runner", c.opts.Identity.RunnerID)
	return c.serve(ctx, sess, local, host)
}

// serve serves the local API through a tunnel that is up, and posts
// heartbeats and renews the certificate through it, until it ends or ctx
// is done.
func (c *Client) serve(ctx context.Context, sess *tunnel.Session, local http.Handler, host string) error {
	srv := &http.Server{Handler: versioned(local), ReadHeaderTimeout: 30 * time.Second}
	go srv.Serve(sess.Listener())
	defer srv.Close()
	c.setSession(sess)
	defer c.setSession(nil)
	cp := &http.Client{Timeout: 30 * time.Second, Transport: versionTransport{&http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return sess.Open(ctx, tunnel.KindHTTP) },
	}}}
	go c.heartbeats(ctx, sess, cp)
	select {
	case <-sess.Done():
		return fmt.Errorf("tunnel to %s closed", host)
	case <-ctx.Done():
		return nil
	}
}

// recordingConn keeps the first read error, which says why a control plane
// closed the tunnel (a TLS alert).
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	err error
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *recordingConn) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// dial connects to host directly or, if HTTPS_PROXY (or https_proxy) says
// so, through an HTTP proxy with CONNECT.
func dial(ctx context.Context, host string) (net.Conn, error) {
	req := &http.Request{URL: &url.URL{Scheme: "https", Host: host}}
	proxy, err := http.ProxyFromEnvironment(req)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	if proxy == nil {
		return d.DialContext(ctx, "tcp", host)
	}
	paddr := proxy.Host
	if proxy.Port() == "" {
		paddr = net.JoinHostPort(proxy.Hostname(), "80")
	}
	c, err := d.DialContext(ctx, "tcp", paddr)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", paddr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	connect := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: host}, Host: host, Header: http.Header{}}
	if u := proxy.User; u != nil {
		p, _ := u.Password()
		connect.SetBasicAuth(u.Username(), p)
		connect.Header.Set("Proxy-Authorization", connect.Header.Get("Authorization"))
		connect.Header.Del("Authorization")
	}
	if err := connect.Write(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("proxy %s: %w", paddr, err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, connect)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("proxy %s: %w", paddr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("proxy %s refused CONNECT %s: %s", paddr, host, resp.Status)
	}
	c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return nil, fmt.Errorf("proxy %s sent data before the tunnel", paddr)
	}
	return c, nil
}

// heartbeats posts a heartbeat every heartbeatInterval, and renews the
// certificate once half its lifetime has passed.
func (c *Client) heartbeats(ctx context.Context, sess *tunnel.Session, cp *http.Client) {
	host, _ := os.Hostname()
	nextBeat := time.Now()
	for {
		held, err := c.certificate()
		if !time.Now().Before(nextBeat) {
			hb := api.Heartbeat{Version: version.Version, Hostname: host, CPUs: runtime.NumCPU(), Engine: c.opts.Engine, Time: time.Now().UTC()}
			if err == nil {
				hb.Certificate = held.SerialNumber.String()
			}
			c.heard(Post(ctx, cp, api.HeartbeatPath, hb, nil))
			nextBeat = time.Now().Add(heartbeatInterval)
		}
		// Renewal is due at half the certificate's lifetime; after a
		// failure it is tried again in a second.
		renewAt := time.Now().Add(time.Second)
		if err == nil {
			if due := halfLife(held); time.Now().Before(due) {
				renewAt = due
			} else if err = c.renew(ctx, cp, held); err == nil {
				// Say at once that the new certificate is stored: the
				// control plane retires the one before it then.
				nextBeat = time.Now()
			}
		}
		if err != nil {
			c.opts.Log.Warn("certificate renewal failed", "err", err)
		}
		wait := max(min(time.Until(nextBeat), time.Until(renewAt)), 100*time.Millisecond)
		select {
		case <-sess.Done():
			return
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// heard takes the control plane's answer to a heartbeat. A 426 says it
// refuses this runner until it is upgraded: said once a tunnel, and shown
// in State until a heartbeat is taken.
func (c *Client) heard(err error) {
	var se *httpjson.StatusError
	refused := ""
	switch {
	case err == nil:
	case errors.As(err, &se) && se.Status == http.StatusUpgradeRequired:
		refused = cmp.Or(se.Msg, http.StatusText(se.Status))
	default:
		c.opts.Log.Debug("heartbeat", "err", err)
		return
	}
	c.mu.Lock()
	said := c.refused
	c.refused = refused
	c.mu.Unlock()
	if refused != "" && refused != said {
		c.opts.Log.Error("the control plane refuses this runner", "reason", refused)
	}
}

// Post sends in (bytes as they are, anything else as JSON) to path on the
// control plane through cp, and decodes the answer into out (nil: discard
// it). An answer other than 2xx is a *httpjson.StatusError.
func Post(ctx context.Context, cp *http.Client, path string, in, out any) error {
	err := httpjson.Call(ctx, cp, http.MethodPost, "http://controlplane"+path, in, out)
	var se *httpjson.StatusError
	if errors.As(err, &se) {
		return fmt.Errorf("%s: %d %s: %w", path, se.Status, http.StatusText(se.Status), err)
	}
	return err
}

// renew asks for a new certificate, for a new key, through the tunnel, and
// stores it.
func (c *Client) renew(ctx context.Context, cp *http.Client, held *x509.Certificate) error {
	key, err := certs.NewKey()
	if err != nil {
		return err
	}
	csr, err := certs.CSR(key, "cameleer-runner")
	if err != nil {
		return err
	}
	// The control plane keeps the certificate this runner holds good until
	// a heartbeat shows the new one stored: the answer may never be.
	var er api.EnrollResponse
	if err := Post(ctx, cp, api.RenewPath+"?held="+held.SerialNumber.String(), csr, &er); err != nil {
		return err
	}
	if err := c.opts.Identity.store(key, er); err != nil {
		return err
	}
	c.opts.Log.Info("certificate renewed", "notAfter", er.NotAfter)
	return nil
}

// certificate is the client certificate this runner holds (a renewal cut
// short between its moves is finished first).
func (c *Client) certificate() (*x509.Certificate, error) {
	if err := c.opts.Identity.settle(); err != nil {
		return nil, err
	}
	pair, err := c.opts.Identity.pair()
	if err != nil {
		return nil, err
	}
	if pair.Leaf != nil {
		return pair.Leaf, nil
	}
	return x509.ParseCertificate(pair.Certificate[0])
}

func halfLife(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2)
}
