// Package runners is the control plane's side of its runners' tunnels:
// which runners are connected, calls into a runner through its tunnel,
// what their heartbeats say, and cutting one off. Who may connect is
// decided by RunnerFor, from the state; what the runner may ask is the
// routes the caller of Serve gives it.
package runners

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/tunnel"
)

// Options configure a Hub.
type Options struct {
	Store *store.Store
	Log   *slog.Logger
	// HTTPServer makes the server of what a runner asks through its
	// tunnel (its timeouts are the caller's).
	HTTPServer func(http.Handler) *http.Server
	// Listen wraps the listener of a runner's streams (write deadlines).
	Listen func(net.Listener) net.Listener
}

// Hub holds the connected runners.
type Hub struct {
	opts    Options
	log     *slog.Logger
	store   *store.Store
	buffers proxyBuffers

	connected prometheus.Gauge
	streams   prometheus.Counter
	proxied   prometheus.Counter

	mu    sync.Mutex
	conns map[string]*Conn // by runner id
	// serving counts the tunnels being served: they save what they saw of
	// their runner as they end.
	serving sync.WaitGroup
}

// New makes a hub with no runner connected.
func New(opts Options) *Hub {
	return &Hub{opts: opts, log: opts.Log, store: opts.Store, conns: map[string]*Conn{},
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cameleer_runners_connected", Help: "Runners with an open tunnel."}),
		streams:   prometheus.NewCounter(prometheus.CounterOpts{Name: "cameleer_tunnel_streams_total", Help: "Streams opened to runners."}),
		proxied:   prometheus.NewCounter(prometheus.CounterOpts{Name: "cameleer_tunnel_proxied_bytes_total", Help: "Response bytes proxied from runners."}),
	}
}

// Collectors are the hub's metrics.
func (h *Hub) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.connected, h.streams, h.proxied}
}

// Conn is a connected runner.
type Conn struct {
	ID, Tenant string
	// Serial is the certificate the runner connected with.
	Serial string
	// Since is when its tunnel opened.
	Since   time.Time
	session *tunnel.Session
	client  *http.Client
	proxy   *httputil.ReverseProxy

	// api is the capability version the runner last said (api.VersionHeader).
	api atomic.Int32

	// lastSeen and version change with every heartbeat; they are kept here
	// and written to the store when the runner disconnects, not on every
	// heartbeat (a thousand runners would be a hundred fsyncs a second).
	mu       sync.Mutex
	lastSeen time.Time
	version  string
}

// APIVersion is the capability version of the contract the runner speaks,
// as it last said.
func (c *Conn) APIVersion() int { return int(c.api.Load()) }

// Done is closed when the runner's tunnel has ended.
func (c *Conn) Done() <-chan struct{} { return c.session.Done() }

// Seen is when the runner was last heard, and the version it said.
func (c *Conn) Seen() (time.Time, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSeen, c.version
}

func (c *Conn) seen(version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastSeen = time.Now().UTC()
	if version != "" {
		c.version = version
	}
}

// Call makes a request of the runner's local API (path: /v1/...) and
// decodes its JSON answer into out (nil: discard it); an answer other than
// 2xx is a *httpjson.StatusError.
func (c *Conn) Call(ctx context.Context, method, path string, in, out any) error {
	return httpjson.Call(ctx, c.client, method, "http://runner"+path, in, out)
}

// CallTimeout is Call, given at most d.
func (c *Conn) CallTimeout(d time.Duration, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.Call(ctx, method, path, in, out)
}

// Get asks the runner's local API for path and hands over the answer as it
// streams (a followed log).
func (c *Conn) Get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://runner"+path, nil)
	if err != nil {
		return nil, err
	}
	return c.client.Do(req)
}

// Proxy forwards r to path on the runner's local API and its answer back.
// The caller decides what may be proxied.
func (c *Conn) Proxy(w http.ResponseWriter, r *http.Request, path string) {
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath = path, ""
	c.proxy.ServeHTTP(w, out)
}

// Serve runs a runner's tunnel over c until it ends or ctx is done. r is
// the runner its certificate (of serial) names; what the runner asks is
// answered by routes, and connected runs (in its own goroutine) once the
// runner counts as connected.
func (h *Hub) Serve(ctx context.Context, c net.Conn, r store.Runner, serial string, routes func(*Conn) http.Handler, connected func(*Conn)) {
	h.serving.Add(1)
	defer h.serving.Done()
	sess := tunnel.Server(c, h.log.With("runner", r.ID))
	now := time.Now().UTC()
	rc := &Conn{ID: r.ID, Tenant: r.Tenant, Serial: serial, Since: now, session: sess, lastSeen: now, version: r.Version}
	rc.api.Store(1)
	// A runner that connects with its renewed certificate holds it.
	h.RetirePrevious(r.ID, serial)
	tr := &tunnel.Transport{Open: func(ctx context.Context) (net.Conn, error) {
		h.streams.Inc()
		return sess.Open(ctx, tunnel.KindHTTP)
	}}
	versioned := versionTransport{tr, rc}
	rc.client = &http.Client{Transport: versioned}
	rc.proxy = h.reverseProxy(versioned)

	h.mu.Lock()
	if old := h.conns[r.ID]; old != nil {
		// A runner that reconnects before its old tunnel timed out.
		old.session.Close()
	}
	h.conns[r.ID] = rc
	h.mu.Unlock()
	h.connected.Inc()
	h.save(rc)
	h.log.Info("runner connected", "runner", r.ID, "tenant", r.Tenant, "remote", c.RemoteAddr())

	srv := h.opts.HTTPServer(versionCheck(rc, routes(rc)))
	go srv.Serve(h.opts.Listen(sess.Listener()))
	go connected(rc)
	select {
	case <-sess.Done():
	case <-ctx.Done():
	}
	srv.Close()
	sess.Close()
	tr.CloseIdleConnections()
	h.mu.Lock()
	if h.conns[r.ID] == rc {
		delete(h.conns, r.ID)
	}
	h.mu.Unlock()
	h.connected.Dec()
	h.save(rc)
	h.log.Info("runner disconnected", "runner", r.ID)
}

// Wait waits for every tunnel being served to end.
func (h *Hub) Wait() { h.serving.Wait() }

func (h *Hub) reverseProxy(tr http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport:  tr,
		BufferPool: &h.buffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", "runner", "runner"
			// The caller's API token is for the control plane only.
			pr.Out.Header.Del("Authorization")
		},
		ModifyResponse: func(resp *http.Response) error {
			// A runner sets nothing in the control plane's origin, and
			// its answers get the control plane's own policy.
			for _, h := range []string{"Set-Cookie", "Content-Security-Policy", "X-Content-Type-Options", "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials"} {
				resp.Header.Del(h)
			}
			resp.Body = countingBody{resp.Body, h.proxied.Add}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			httpjson.Error(w, http.StatusBadGateway, "runner did not answer: "+err.Error())
		},
	}
}

// versionTransport tells the runner the control plane's capability
// version with every request, and notes the runner's from every answer.
type versionTransport struct {
	http.RoundTripper
	rc *Conn
}

func (t versionTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(api.VersionHeader, strconv.Itoa(api.Version))
	resp, err := t.RoundTripper.RoundTrip(req)
	if err == nil && resp.Header.Get(api.VersionHeader) != "" {
		t.rc.api.Store(int32(api.PeerVersion(resp.Header)))
	}
	return resp, err
}

// versionCheck refuses what a runner older than api.MinVersion asks, with
// a line that says what to do, notes the version of the others, and
// answers with the control plane's.
func versionCheck(rc *Conn, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.VersionHeader, strconv.Itoa(api.Version))
		v := api.PeerVersion(r.Header)
		if v < api.MinVersion {
			httpjson.Error(w, http.StatusUpgradeRequired, fmt.Sprintf("this runner speaks version %s of the runner API; this control plane speaks %d to %d: upgrade the runner", r.Header.Get(api.VersionHeader), api.MinVersion, api.Version))
			return
		}
		rc.api.Store(int32(v))
		next.ServeHTTP(w, r)
	})
}

// RunnerFor is the registered, unrevoked runner a certificate belongs to.
func (h *Hub) RunnerFor(cert *x509.Certificate) (store.Runner, error) {
	r, err := h.store.Runner(cert.Subject.CommonName)
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

// Heartbeat takes what a runner says of itself every few seconds.
func (h *Hub) Heartbeat(c *Conn, hb api.Heartbeat) {
	c.seen(hb.Version)
	if hb.Certificate != "" {
		h.RetirePrevious(c.ID, hb.Certificate)
	}
}

// RetirePrevious refuses the certificate a runner renewed from, once it
// shows (connecting with it, or in a heartbeat) that it holds the newest:
// until then a lost renewal answer must not lock it out.
func (h *Hub) RetirePrevious(id, held string) {
	// Read first: nearly always there is nothing to retire, which needs
	// no write.
	r, err := h.store.Runner(id)
	if err == nil && r.PrevSerial != "" && r.Serial == held {
		r, err = h.store.UpdateRunner(id, func(r *store.Runner) error {
			if r.Serial == held {
				r.PrevSerial = ""
			}
			return nil
		})
		if err == nil && r.PrevSerial == "" {
			h.log.Info("previous runner certificate retired", "runner", id, "holds", held)
		}
	}
	if err != nil {
		h.log.Warn("retire the previous certificate", "runner", id, "err", err)
	}
}

// save writes what the control plane saw of a runner into the store.
func (h *Hub) save(rc *Conn) {
	seen, version := rc.Seen()
	_, err := h.store.UpdateRunner(rc.ID, func(r *store.Runner) error {
		r.LastSeen, r.Version = seen, version
		return nil
	})
	if err != nil {
		h.log.Warn("save runner", "runner", rc.ID, "err", err)
	}
}

// Live is the connected runner with id, or nil.
func (h *Hub) Live(id string) *Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[id]
}

// Revoke refuses the runner's certificate from now on and closes its
// tunnel.
func (h *Hub) Revoke(id string) (store.Runner, error) {
	r, err := h.store.UpdateRunner(id, func(r *store.Runner) error { r.Revoked = true; return nil })
	if err != nil {
		return r, fmt.Errorf("revoke runner %s: %w", id, err)
	}
	h.mu.Lock()
	rc := h.conns[id]
	delete(h.conns, id)
	h.mu.Unlock()
	if rc != nil {
		rc.session.Close()
	}
	h.log.Info("runner revoked", "runner", r.ID, "tenant", r.Tenant)
	return r, nil
}

// CloseAll closes every tunnel.
func (h *Hub) CloseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, rc := range h.conns {
		rc.session.Close()
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
