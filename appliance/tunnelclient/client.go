package tunnelclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cameleer/cameleer/api"
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

// Client keeps the runner's tunnel open.
type Client struct {
	Identity Identity
	// LocalAPI answers the control plane's requests through the tunnel.
	LocalAPI http.Handler
	// Engine says whether this runner runs the engine (for heartbeats).
	Engine bool
	Log    *slog.Logger

	connected chan struct{} // signalled on each new connection (tests)

	mu        sync.Mutex
	session   *tunnel.Session // the current tunnel, nil while down
	changed   chan struct{}   // closed when session changes
	since     time.Time       // when the current tunnel came up, or the last went down
	lastError string          // why the last tunnel ended or failed
}

// State is what a runner's tunnel is doing.
type State struct {
	Connected bool `json:"connected"`
	// Since is when the tunnel came up, or (not connected) when it last
	// went down; zero before the first attempt ended.
	Since time.Time `json:"since,omitzero"`
	// LastError says why the last tunnel ended or could not be made.
	LastError string `json:"lastError,omitempty"`
}

// State is the tunnel's state now.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return State{Connected: c.session != nil, Since: c.since, LastError: c.lastError}
}

// ControlPlane is an HTTP client to the control plane through whichever
// tunnel is up when a request is made: a request made while the tunnel is
// down waits for the next one (or for its context).
func (c *Client) ControlPlane() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return c.openStream(ctx) },
		// A tunnel that went down takes its streams along; new ones go
		// through the next.
		DisableKeepAlives: true,
	}}
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
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
}

// Run connects, and reconnects with jittered exponential backoff, until ctx
// is done.
func (c *Client) Run(ctx context.Context) error {
	for attempt := 0; ; {
		start := time.Now()
		err := c.connectOnce(ctx)
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
			attempt = 0 // it was up for a while: start over
		}
		d := min(minBackoff<<min(attempt, 10), maxBackoff)
		d = d/2 + mrand.N(d/2+1)
		c.Log.Warn("tunnel down; reconnecting", "err", err, "in", d.Round(time.Millisecond))
		attempt++
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

// connectOnce dials, serves the tunnel until it ends, and says why.
func (c *Client) connectOnce(ctx context.Context) error {
	u, err := url.Parse(c.Identity.URL)
	if err != nil {
		return err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	cfg, err := c.Identity.tlsConfig(u.Hostname())
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
	sess := tunnel.Client(rec, c.Log)
	defer sess.Close()
	// With TLS 1.3 the server judges the client certificate after the
	// client's handshake is done: a ping shows whether it was accepted.
	if _, err := sess.Ping(); err != nil {
		if rerr := rec.readErr(); rerr != nil && strings.Contains(rerr.Error(), "certificate") {
			return fmt.Errorf("the control plane refused this runner's certificate (revoked or replaced?): %w", rerr)
		}
		return fmt.Errorf("tunnel to %s: %w", host, err)
	}
	c.Log.Info("tunnel up", "controlPlane", host, "runner", c.Identity.RunnerID)
	if c.connected != nil {
		select {
		case c.connected <- struct{}{}:
		default:
		}
	}
	srv := &http.Server{Handler: c.LocalAPI, ReadHeaderTimeout: 30 * time.Second}
	go srv.Serve(sess.Listener())
	defer srv.Close()
	c.setSession(sess)
	defer c.setSession(nil)
	cp := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return sess.Open(ctx, tunnel.KindHTTP) },
	}}
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
			hb := api.Heartbeat{Version: version.Version, Hostname: host, CPUs: runtime.NumCPU(), Engine: c.Engine, Time: time.Now().UTC()}
			if err == nil {
				hb.Certificate = held.SerialNumber.String()
			}
			if err := Post(ctx, cp, api.HeartbeatPath, hb, nil); err != nil {
				c.Log.Debug("heartbeat", "err", err)
			}
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
			c.Log.Warn("certificate renewal failed", "err", err)
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

// StatusError is the control plane's answer other than 2xx.
type StatusError struct {
	Path string
	Code int
	Msg  string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: %d %s: %s", e.Path, e.Code, http.StatusText(e.Code), e.Msg)
}

// Post sends body (bytes as they are, anything else as JSON) to the control
// plane through cp, and decodes the answer into out when out is not nil.
func Post(ctx context.Context, cp *http.Client, path string, body any, out any) error {
	var b []byte
	switch v := body.(type) {
	case []byte:
		b = v
	default:
		b, _ = json.Marshal(v)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://controlplane"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := cp.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return &StatusError{Path: path, Code: resp.StatusCode, Msg: httpjson.ErrorText(raw)}
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// renew asks for a new certificate, for a new key, through the tunnel, and
// stores it.
func (c *Client) renew(ctx context.Context, cp *http.Client, held *x509.Certificate) error {
	key, err := certs.NewKey()
	if err != nil {
		return err
	}
	csr, err := newCSR(key)
	if err != nil {
		return err
	}
	// The control plane keeps the certificate this runner holds good until
	// a heartbeat shows the new one stored: the answer may never be.
	var er api.EnrollResponse
	if err := Post(ctx, cp, api.RenewPath+"?held="+held.SerialNumber.String(), csr, &er); err != nil {
		return err
	}
	if err := c.Identity.store(key, er); err != nil {
		return err
	}
	c.Log.Info("certificate renewed", "notAfter", er.NotAfter)
	return nil
}

// certificate is the client certificate this runner holds (a renewal cut
// short between its moves is finished first).
func (c *Client) certificate() (*x509.Certificate, error) {
	if err := c.Identity.settle(); err != nil {
		return nil, err
	}
	pair, err := c.Identity.pair()
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
