package tunnel_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
	"github.com/cameleer/cameleer/tunnel"
)

// hostile is a runner under an attacker's control: a real identity,
// registered with `cameleer token redeem`, whose tunnel the test runs and
// makes say what no honest runner would.
type hostile struct {
	id   string
	sess *tunnel.Session
	// http calls the control plane through the tunnel, as the runner.
	http *http.Client
}

// hostileRunner registers a runner of tenant called name and opens its
// tunnel; serve (if not nil) answers what the control plane asks of it.
func (e *env) hostileRunner(tenant, name string, serve func(net.Conn)) *hostile {
	e.t.Helper()
	dir := filepath.Join(e.dir, name)
	e.register(tenant, name, dir)
	ident := filepath.Join(dir, "controlplane")
	cert, err := tls.LoadX509KeyPair(filepath.Join(ident, "client.crt"), filepath.Join(ident, "client.key"))
	if err != nil {
		e.t.Fatal(err)
	}
	var reg struct{ RunnerID string }
	if b, err := os.ReadFile(filepath.Join(ident, "runner.json")); err != nil || json.Unmarshal(b, &reg) != nil {
		e.t.Fatalf("runner.json: %v", err)
	}
	c, err := tls.Dial("tcp", e.addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert},
		NextProtos: []string{tunnel.ALPN}, MinVersion: tls.VersionTLS13})
	if err != nil {
		e.t.Fatal(err)
	}
	h := &hostile{id: reg.RunnerID, sess: tunnel.Client(c, slog.New(slog.DiscardHandler))}
	e.t.Cleanup(func() { h.sess.Close() })
	h.http = &http.Client{Timeout: time.Minute, Transport: &tunnel.Transport{Open: func(ctx context.Context) (net.Conn, error) {
		return h.sess.Open(ctx, tunnel.KindHTTP)
	}}}
	if serve != nil {
		l := h.sess.Listener()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go serve(c)
			}
		}()
	}
	// Connected once the control plane lists it so.
	waitFor(e.t, "the hostile runner connected", func() error {
		var rs []runnerView
		e.call("GET", "/api/v1/tenants/"+tenant+"/runners", e.admin, nil, &rs)
		for _, r := range rs {
			if r.ID == h.id && r.Connected {
				return nil
			}
		}
		return fmt.Errorf("runners: %+v", rs)
	})
	return h
}

func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(poll)
	}
}

// usage is what a process holds: memory (resident now, and its peak since
// it started) and open files.
type usage struct {
	rss, peak int64 // bytes
	files     int
}

func (u usage) String() string {
	return fmt.Sprintf("RSS %d MiB (peak %d MiB), %d open files", u.rss>>20, u.peak>>20, u.files)
}

// peakGrowth fails t if the peak memory grew by more than bound from
// before to after, in what the test did.
func peakGrowth(t *testing.T, before, after usage, bound int64, what string) {
	t.Helper()
	if grown := after.peak - before.peak; grown > bound {
		t.Errorf("the control plane's peak memory grew by %d MiB%s, over %d MiB", grown>>20, what, bound>>20)
	}
}

func usageOf(t *testing.T, pid int) usage {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("the control plane is gone: %v", err)
	}
	var u usage
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			u.rss = kb << 10
		case "VmHWM":
			u.peak = kb << 10
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	u.files = len(fds)
	return u
}

// bystander is another tenant going about its business while an attack
// runs: it reads its tenant and makes and revokes an API token (a write),
// and keeps the slowest answer.
type bystander struct {
	e      *env
	token  string
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	worst  time.Duration
	errors []string
	calls  int
}

// newBystander makes tenant globex and its token; start runs it.
func (e *env) newBystander() *bystander {
	e.t.Helper()
	e.tenant("globex", "low")
	var tok struct{ Token string }
	if code := e.call("POST", "/api/v1/tenants/globex/api-tokens", e.admin, nil, &tok); code != http.StatusCreated {
		e.t.Fatalf("globex token: %d", code)
	}
	return &bystander{e: e, token: tok.Token}
}

func (b *bystander) start() {
	b.stop, b.done = make(chan struct{}), make(chan struct{})
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	call := func(method, path string, out any) error {
		req, _ := http.NewRequest(method, "https://"+b.e.addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+b.token)
		start := time.Now()
		resp, err := client.Do(req)
		took := time.Since(start)
		b.mu.Lock()
		b.worst = max(b.worst, took)
		b.calls++
		b.mu.Unlock()
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		if out != nil {
			return json.NewDecoder(resp.Body).Decode(out)
		}
		return nil
	}
	go func() {
		defer close(b.done)
		for {
			var tok struct{ ID string }
			err := call("GET", "/api/v1/tenants/globex", nil)
			if err == nil {
				err = call("POST", "/api/v1/tenants/globex/api-tokens", &tok)
			}
			if err == nil {
				err = call("DELETE", "/api/v1/tenants/globex/api-tokens/"+tok.ID, nil)
			}
			if err != nil {
				b.mu.Lock()
				b.errors = append(b.errors, err.Error())
				b.mu.Unlock()
			}
			select {
			case <-b.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

// finish stops the bystander and fails the test if any of its calls
// failed or took over bound.
func (b *bystander) finish(t *testing.T, bound time.Duration) {
	t.Helper()
	close(b.stop)
	<-b.done
	t.Logf("bystander: %d calls, the slowest %v", b.calls, b.worst.Round(time.Millisecond))
	if len(b.errors) > 0 {
		t.Errorf("another tenant's calls failed during the attack: %v", b.errors[:min(len(b.errors), 5)])
	}
	if b.worst > bound {
		t.Errorf("another tenant's slowest call took %v during the attack, over %v", b.worst, bound)
	}
}

// readRequest reads one request's head from a stream the control plane
// opened.
func readRequest(c net.Conn) (*http.Request, error) {
	return http.ReadRequest(bufio.NewReader(c))
}

// TestHostileRunnerAnswerHeaders: a runner that answers with a header that
// never ends took the control plane to 16.7 GB. Its answers are now read
// up to a bound; the proxied request and the deployment fail with a clear
// error, and the control plane's memory stays where it was.
func TestHostileRunnerAnswerHeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	e := newEnv(t, freeAddr(t))
	e.tenant("acme", "low")
	flood := func(c net.Conn) {
		defer c.Close()
		if _, err := readRequest(c); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Flood: ")
		line := []byte(strings.Repeat("a", 64<<10))
		for {
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	}
	by := e.newBystander()
	h := e.hostileRunner("acme", "flood", flood)
	before := usageOf(t, e.cp.Process.Pid)
	by.start()
	var out struct{ Error string }
	if code := e.call("GET", "/api/v1/tenants/acme/runners/"+h.id+"/proxy/status", e.admin, nil, &out); code != http.StatusBadGateway || !strings.Contains(out.Error, "header") {
		t.Errorf("proxied status from a flooding runner: %d %q, want 502 naming the header", code, out.Error)
	}
	after := usageOf(t, e.cp.Process.Pid)
	t.Logf("control plane before: %v; after: %v", before, after)
	peakGrowth(t, before, after, 32<<20, " reading one answer")
	// A deployment sent to it fails the same way, and says so.
	e.call("POST", "/api/v1/tenants/acme/environments", e.admin, map[string]string{"name": "prod"}, nil)
	code, sha := e.upload("/api/v1/tenants/acme/apps/orders/artifacts", e.admin, smallJar(t), "")
	if code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, sha)
	}
	e.call("POST", "/api/v1/tenants/acme/environments/prod/deployments", e.admin, map[string]any{"app": "orders", "artifact": sha}, nil)
	e.logged(t, "the deployment's failure", "answer header is over 1 MiB")
	// Many at once are bounded the same.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.call("GET", "/api/v1/tenants/acme/runners/"+h.id+"/proxy/status", e.admin, nil, nil)
		}()
	}
	wg.Wait()
	after = usageOf(t, e.cp.Process.Pid)
	by.finish(t, 2*time.Second)
	t.Logf("after 20 more at once: %v", after)
	peakGrowth(t, before, after, 96<<20, " reading 20 answers at once")
	// The calls' connections close as their clients let go of them: what
	// is held must come back down, not at once.
	testutil.Eventually(t, 200*time.Millisecond, 30*time.Second, "the control plane's open files back down", func() error {
		if now := usageOf(t, e.cp.Process.Pid); now.files > before.files+4 {
			return fmt.Errorf("open files went from %d to %d", before.files, now.files)
		}
		return nil
	})
}

// TestHostileRunnerStreams: a runner may open only so many streams at
// once; the rest are refused, the control plane says so in its log, and
// its memory and another tenant's calls are unaffected.
func TestHostileRunnerStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	e := newEnv(t, freeAddr(t))
	e.tenant("acme", "low")
	by := e.newBystander()
	h := e.hostileRunner("acme", "streams", nil)
	before := usageOf(t, e.cp.Process.Pid)
	by.start()

	// Streams that start a request and never finish it, each with as much
	// data behind as the peer lets it send unread: the 64 it may have
	// open, and 60 more, which are refused.
	junk := []byte("GET /api/v1/runner/heartbeat HTTP/1.1\r\nHost: cp\r\nX-Junk: " + strings.Repeat("j", 255<<10))
	open := func(n int) (conns []net.Conn) {
		for range n {
			c, err := h.sess.Open(context.Background(), tunnel.KindHTTP)
			if err != nil {
				return conns // the control plane ended the session
			}
			conns = append(conns, c)
			c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			c.Write(junk)
		}
		return conns
	}
	conns := open(64 + 60)
	// A stream is refused with a reset, which shows on a read; one the
	// control plane holds just waits.
	refused := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			refused++
		}
	}
	during := usageOf(t, e.cp.Process.Pid)
	t.Logf("124 streams opened, %d refused; control plane before: %v; during: %v", refused, before, during)
	if refused != 60 {
		t.Errorf("%d of 124 streams opened at once were refused, want the 60 past the 64 allowed", refused)
	}
	// 64 streams of 256 KiB unread (tunnel.MaxRunnerStreams), and what
	// the control plane's goroutines take.
	peakGrowth(t, before, during, 64<<20, "")
	if during.files > before.files+16 {
		t.Errorf("the control plane's open files went from %d to %d", before.files, during.files)
	}
	e.logged(t, "the refused streams", "too many streams")
	// The runner's tunnel still works for what it is for.
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "a heartbeat after the streams are closed", func() error {
		resp, err := h.http.Post("http://cp/api/v1/runner/heartbeat", "application/json", strings.NewReader(`{"version":"x"}`))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("heartbeat: %s", resp.Status)
		}
		return nil
	})
	// One that keeps on opening them is cut off.
	conns = open(3000)
	select {
	case <-h.sess.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a runner that opened 3000 streams still has its tunnel")
	}
	after := usageOf(t, e.cp.Process.Pid)
	by.finish(t, 2*time.Second)
	t.Logf("cut off after %d more streams; control plane: %v", len(conns), after)
	peakGrowth(t, before, after, 64<<20, "")
	e.logged(t, "why it cut the runner off", "keeps opening streams past its limit")
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// cpOutput is what the control plane logged so far.
func (e *env) cpOutput() string {
	e.cpMu.Lock()
	defer e.cpMu.Unlock()
	return e.cpLog.String()
}

// logged fails t unless the control plane logs every one of lines within
// 10 s. Its output is copied by another goroutine, so a line can arrive
// after the answer that followed it.
func (e *env) logged(t *testing.T, what string, lines ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := e.cpOutput()
		if !slices.ContainsFunc(lines, func(l string) bool { return !strings.Contains(log, l) }) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the control plane's log does not say %s:\n%s", what, log)
			return
		}
		time.Sleep(poll)
	}
}

// TestHostileRunnerRate: a runner that sends reports as fast as it can is
// held to its rate (429 past it, one log line), and another tenant's
// writes go on.
func TestHostileRunnerRate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	e := newEnv(t, freeAddr(t))
	e.tenant("acme", "low")
	by := e.newBystander()
	h := e.hostileRunner("acme", "chatty", nil)
	by.start()
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				resp, err := h.http.Post("http://cp"+"/api/v1/runner/deployments/nope", "application/json", strings.NewReader(`{"phase":"running"}`))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	by.finish(t, 2*time.Second)
	t.Logf("2000 reports in %v: %v", took.Round(time.Millisecond), codes)
	// At most the burst (100) and 20 a second got through.
	if through := 2000 - codes[http.StatusTooManyRequests]; float64(through) > 100+20*took.Seconds()+20 {
		t.Errorf("%d of 2000 reports in %v got through the rate limit", through, took)
	}
	e.logged(t, "the runner over its rate", "runner over its request rate")
}

// TestHostileRunnerCrossTenant: a runner reaches only its own tenant's
// artifacts and deployments.
func TestHostileRunnerCrossTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	e := newEnv(t, freeAddr(t))
	e.tenant("acme", "low")
	e.tenant("globex", "low")
	e.call("POST", "/api/v1/tenants/globex/environments", e.admin, map[string]string{"name": "prod"}, nil)
	e.register("globex", "honest", filepath.Join(e.dir, "honest"))
	jar := smallJar(t)
	code, sha := e.upload("/api/v1/tenants/globex/apps/orders/artifacts", e.admin, jar, "")
	if code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, sha)
	}
	var d struct{ ID string }
	if code := e.call("POST", "/api/v1/tenants/globex/environments/prod/deployments", e.admin, map[string]any{"app": "orders", "artifact": sha}, &d); code != http.StatusAccepted {
		t.Fatalf("globex deployment: %d", code)
	}
	h := e.hostileRunner("acme", "nosy", nil)
	get := func(path string) int {
		resp, err := h.http.Get("http://cp" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/api/v1/runner/artifacts/" + sha); code != http.StatusNotFound {
		t.Errorf("acme's runner fetched globex's artifact: %d", code)
	}
	resp, err := h.http.Post("http://cp/api/v1/runner/deployments/"+d.ID, "application/json", strings.NewReader(`{"phase":"failed","reason":"sabotage"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("acme's runner reported on globex's deployment: %d", resp.StatusCode)
	}
	var got struct{ Phase, Reason string }
	e.call("GET", "/api/v1/tenants/globex/environments/prod/deployments/"+d.ID, e.admin, nil, &got)
	if got.Reason == "sabotage" {
		t.Errorf("globex's deployment took acme's runner's report: %+v", got)
	}
	// The runner API paths are for runners: an API client with a tenant
	// token gets nothing there.
	if code := e.call("GET", "/api/v1/runner/artifacts/"+sha, e.admin, nil, nil); code != http.StatusNotFound {
		t.Errorf("the runner path over the API: %d", code)
	}
}

// smallJar is an app the upload check takes.
func smallJar(t *testing.T) []byte {
	return testutil.Zip(t, map[string]string{"META-INF/MANIFEST.MF": "Manifest-Version: 1.0\r\nMain-Class: com.example.Orders\r\n", "com/example/Orders.class": "x"})
}

// TestProxyReadsOnly: the proxy reaches the runner's read-only paths and
// nothing else, cleans nothing for the runner, and sets nothing in the
// control plane's origin.
func TestProxyReadsOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	e := newEnv(t, freeAddr(t))
	e.tenant("acme", "low")
	var mu sync.Mutex
	var seen []string
	serve := func(c net.Conn) {
		defer c.Close()
		for {
			req, err := readRequest(c)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			mu.Lock()
			seen = append(seen, req.Method+" "+req.URL.Path)
			mu.Unlock()
			head := "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: session=stolen; Path=/\r\n" +
				"Content-Security-Policy: script-src *\r\nContent-Length: 27\r\n\r\n"
			if req.Method != http.MethodHead {
				head += "<script>alert(1)</script>\r\n"
			}
			io.WriteString(c, head)
		}
	}
	h := e.hostileRunner("acme", "cookie", serve)
	var tok struct{ Token string }
	e.call("POST", "/api/v1/tenants/acme/api-tokens", e.admin, nil, &tok)
	proxy := "https://" + e.addr + "/api/v1/tenants/acme/runners/" + h.id + "/proxy"
	do := func(method, rawPath string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, proxy+rawPath, strings.NewReader(`{"app":"x","image":"evil"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := do("GET", "/status")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("proxied status: %d", resp.StatusCode)
	}
	if c := resp.Header.Values("Set-Cookie"); len(c) > 0 {
		t.Errorf("the runner's cookie reached the caller: %v", c)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Values("Content-Security-Policy")[0] != "default-src 'none'; frame-ancestors 'none'" || len(resp.Header.Values("Content-Security-Policy")) != 1 {
		t.Errorf("proxied answer's security headers: %v", resp.Header)
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/environments/prod/apps", http.StatusOK},
		{"GET", "/v1/environments/prod/apps/orders/status", http.StatusOK},
		{"HEAD", "/status", http.StatusOK},
		{"POST", "/v1/deployments", http.StatusForbidden},
		{"PUT", "/v1/deployments", http.StatusForbidden},
		{"GET", "/v1/deployments", http.StatusForbidden},
		{"POST", "/v1/environments/prod/apps/orders/stop", http.StatusForbidden},
		{"DELETE", "/status", http.StatusForbidden},
		// The control plane's router cleans this one, and the client
		// follows its redirect to a path the proxy refuses.
		{"GET", "/status/../v1/deployments", http.StatusForbidden},
		{"GET", "/v1/environments/prod%2Fapps", http.StatusBadRequest},
		{"GET", "/status/", http.StatusBadRequest},
	} {
		if resp := do(tc.method, tc.path); resp.StatusCode != tc.status {
			t.Errorf("%s %s through the proxy: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if !strings.HasPrefix(s, "GET ") && !strings.HasPrefix(s, "HEAD ") || strings.Contains(s, "deployments") {
			t.Errorf("the runner was asked %q", s)
		}
	}
	if !slices.Contains(seen, "GET /status") {
		t.Errorf("the runner saw %v", seen)
	}
}

// TestIdleClientsAndTrickles: without a login, idle connections, half
// bodies and connections that never say anything held the control plane's
// files until, at its file limit, accept failed and it stopped serving.
// Run with 128 files, it now cuts each off and serves on.
func TestIdleClientsAndTrickles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	e := newEnvPrefixed(t, freeAddr(t), nil, []string{"--idle-timeout", "2s", "--read-timeout", "3s"}, []string{"prlimit", "--nofile=128:128", "--"})
	pid := e.cp.Process.Pid
	tlsCfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}

	// 150 clients that made one request and keep the connection, and 150
	// that connect and never say a word: more than the files it has.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 150 {
		c, err := tls.Dial("tcp", e.addr, tlsCfg)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		held = append(held, c)
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: cp\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatalf("first request: %v", err)
		}
	}
	for range 150 {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		held = append(held, c)
	}
	// A body sent a byte at a time.
	trickle, err := tls.Dial("tcp", e.addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer trickle.Close()
	io.WriteString(trickle, "POST /api/v1/enroll HTTP/1.1\r\nHost: cp\r\nContent-Length: 1000\r\n\r\n")
	trickleDone := make(chan error, 1)
	go func() {
		for {
			if _, err := trickle.Write([]byte("{")); err != nil {
				trickleDone <- err
				return
			}
			time.Sleep(time.Second)
		}
	}()
	u := usageOf(t, pid)
	t.Logf("under the attack: %v", u)
	if u.files > 128 {
		t.Errorf("%d open files, over the limit of 128", u.files)
	}
	// Every one of them is let go, the trickle within its read timeout
	// and what it takes to write the answer, and the control plane is
	// still there and answers.
	select {
	case <-trickleDone:
	case <-time.After(20 * time.Second):
		t.Error("a body sent a byte a second was still being taken after 20 s")
	}
	waitFor(t, "a new client served", func() error {
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
		resp, err := c.Get("https://" + e.addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	for i, c := range held {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("connection %d was not closed by the control plane: %v", i, err)
		}
	}
	if u := usageOf(t, pid); u.files > 32 {
		t.Errorf("after the attack: %v", u)
	}
	if strings.Contains(e.cpOutput(), "accept:") {
		t.Errorf("the control plane stopped accepting:\n%s", e.cpOutput())
	}
}

// TestHostileRunnerUnreadDownloads: a runner that asks for its artifact
// hundreds of times and never reads the answers held a file and a
// goroutine for each, for ever, and took /healthz down for everyone. Each
// write now has a deadline, and downloads wait for a slot.
func TestHostileRunnerUnreadDownloads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	e := newEnv(t, freeAddr(t))
	e.tenant("acme", "low")
	e.call("POST", "/api/v1/tenants/acme/environments", e.admin, map[string]string{"name": "prod"}, nil)
	by := e.newBystander()
	h := e.hostileRunner("acme", "hoarder", func(c net.Conn) {
		// Takes deployments and says nothing more.
		defer c.Close()
		if req, err := readRequest(c); err == nil {
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
		}
	})
	jar := bigJar(t, 8<<20)
	code, sha := e.upload("/api/v1/tenants/acme/apps/orders/artifacts", e.admin, jar, "")
	if code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, sha)
	}
	if code := e.call("POST", "/api/v1/tenants/acme/environments/prod/deployments", e.admin, map[string]any{"app": "orders", "artifact": sha, "runner": h.id}, nil); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	by.start()
	time.Sleep(time.Second) // its connection is open
	before := usageOf(t, e.cp.Process.Pid)
	// As many downloads as there are slots, and one more, never read.
	var streams []net.Conn
	for range 17 {
		c, err := h.sess.Open(context.Background(), tunnel.KindHTTP)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, c)
		io.WriteString(c, "GET /api/v1/runner/artifacts/"+sha+" HTTP/1.1\r\nHost: cp\r\n\r\n")
	}
	time.Sleep(3 * time.Second)
	during := usageOf(t, e.cp.Process.Pid)
	t.Logf("control plane before: %v; with 17 downloads unread: %v", before, during)
	if during.files > before.files+16 {
		t.Errorf("open files went from %d to %d with 17 downloads unread; 16 may be served at once", before.files, during.files)
	}
	if during.files < before.files+16 {
		t.Errorf("open files went from %d to %d: the downloads are not held as the test means", before.files, during.files)
	}
	// The one waiting for a slot gives up with its stream; the others
	// are cut off once a write has waited its 30 s, and their files go
	// with them.
	streams[16].Close()
	deadline := time.Now().Add(75 * time.Second)
	for u := usageOf(t, e.cp.Process.Pid); u.files > before.files+1; u = usageOf(t, e.cp.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("downloads nobody reads still hold files after 75 s: %v", u)
		}
		time.Sleep(time.Second)
	}
	for _, c := range streams {
		c.Close()
	}

	// Hundreds at once, from another runner of the tenant's: past the
	// streams it may have open, it is refused, and as it keeps asking it
	// is cut off.
	flooder := e.hostileRunner("acme", "flooder", nil)
	for range 450 {
		c, err := flooder.sess.Open(context.Background(), tunnel.KindHTTP)
		if err != nil {
			break // the control plane ended the session
		}
		io.WriteString(c, "GET /api/v1/runner/artifacts/"+sha+" HTTP/1.1\r\nHost: cp\r\n\r\n")
	}
	select {
	case <-flooder.sess.Done():
	case <-time.After(10 * time.Second):
		t.Error("a runner that opened 450 streams at once still has its tunnel")
	}
	after := usageOf(t, e.cp.Process.Pid)
	by.finish(t, 2*time.Second)
	t.Logf("after the flood: %v", after)
	peakGrowth(t, before, after, 64<<20, "")
	e.logged(t, "why it refused the runner's streams and cut it off", "resetting new streams", "closing the session")
}

// bigJar is an app with size bytes of data that does not compress, stored.
func bigJar(t *testing.T, size int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("META-INF/MANIFEST.MF")
	io.WriteString(w, "Manifest-Version: 1.0\r\nMain-Class: com.example.Orders\r\n")
	w, _ = zw.CreateHeader(&zip.FileHeader{Name: "data.bin", Method: zip.Store})
	io.CopyN(w, rand.Reader, int64(size))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// nestedJar wraps inner in a JAR depth times, each stored as lib/inner.jar.
func nestedJar(t *testing.T, inner []byte, depth int) []byte {
	t.Helper()
	for range depth {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("META-INF/MANIFEST.MF")
		io.WriteString(w, "Manifest-Version: 1.0\r\nMain-Class: com.example.Orders\r\n")
		w, _ = zw.CreateHeader(&zip.FileHeader{Name: "lib/inner.jar", Method: zip.Store})
		w.Write(inner)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		inner = buf.Bytes()
	}
	return inner
}

// TestNestedJarUploads: the upload check read each nested JAR whole into
// memory, at any depth: three uploads at once took 4 GB. Nested JARs are
// now read in place (or from disk), at most 3 deep, two checks at a time.
func TestNestedJarUploads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	e := newEnv(t, freeAddr(t))
	e.tenant("acme", "low")
	path := "/api/v1/tenants/acme/apps/orders/artifacts"
	if code, msg := e.upload(path, e.admin, nestedJar(t, smallJar(t), 8), ""); code != http.StatusUnprocessableEntity || !strings.Contains(msg, "nested") {
		t.Errorf("a JAR nested 8 deep: %d %q, want 422 naming the nesting", code, msg)
	}
	e.logged(t, "the refused upload", "artifact refused")
	// Three at once, each with 40 MiB in a JAR nested 3 deep.
	big := nestedJar(t, bigJar(t, 40<<20), 2)
	before := usageOf(t, e.cp.Process.Pid)
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = e.upload(path, e.admin, big, "")
		}()
	}
	wg.Wait()
	after := usageOf(t, e.cp.Process.Pid)
	t.Logf("three uploads of %d MiB: %v; control plane before: %v; after: %v", len(big)>>20, codes, before, after)
	if slices.ContainsFunc(codes, func(c int) bool { return c != http.StatusCreated && c != http.StatusOK }) {
		t.Errorf("uploads answered %v", codes)
	}
	peakGrowth(t, before, after, 48<<20, " checking three uploads")
}

// TestAdminTokens: admin tokens are listed, made and revoked; the last one
// stays; a restart with --rotate-admin-token replaces them all.
func TestAdminTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	e := newEnv(t, freeAddr(t))
	var list []struct{ ID string }
	if code := e.call("GET", "/api/v1/admin-tokens", e.admin, nil, &list); code != http.StatusOK || len(list) != 1 {
		t.Fatalf("admin tokens after the first start: %d %+v", code, list)
	}
	first := list[0].ID
	var second struct{ Token, ID string }
	if code := e.call("POST", "/api/v1/admin-tokens", e.admin, nil, &second); code != http.StatusCreated {
		t.Fatalf("new admin token: %d", code)
	}
	e.tenant("acme", "low")
	var tenantTok struct{ Token string }
	e.call("POST", "/api/v1/tenants/acme/api-tokens", e.admin, nil, &tenantTok)
	if code := e.call("GET", "/api/v1/admin-tokens", tenantTok.Token, nil, nil); code != http.StatusForbidden {
		t.Errorf("a tenant token listed admin tokens: %d", code)
	}
	if code := e.call("DELETE", "/api/v1/admin-tokens/"+first, second.Token, nil, nil); code != http.StatusNoContent {
		t.Fatalf("revoke the first admin token: %d", code)
	}
	if code := e.call("GET", "/api/v1/tenants", e.admin, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("a revoked admin token: %d", code)
	}
	var out struct{ Error string }
	if code := e.call("DELETE", "/api/v1/admin-tokens/"+second.ID, second.Token, nil, &out); code != http.StatusConflict || !strings.Contains(out.Error, "rotate-admin-token") {
		t.Errorf("revoke the last admin token: %d %q", code, out.Error)
	}
	// Rotation: a new token in admin.token, the old ones refused, the
	// tenant's kept.
	e.stopCP()
	e.cpArgs = append(e.cpArgs, "--rotate-admin-token")
	e.startCP()
	b, err := os.ReadFile(filepath.Join(e.dir, "cp", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	rotated := strings.TrimSpace(string(b))
	if rotated == second.Token {
		t.Fatal("admin.token was not rotated")
	}
	if code := e.call("GET", "/api/v1/tenants", second.Token, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("an admin token from before the rotation: %d", code)
	}
	if code := e.call("GET", "/api/v1/admin-tokens", rotated, nil, &list); code != http.StatusOK || len(list) != 1 {
		t.Errorf("admin tokens after the rotation: %d %+v", code, list)
	}
	if code := e.call("GET", "/api/v1/tenants/acme", tenantTok.Token, nil, nil); code != http.StatusOK {
		t.Errorf("a tenant token after the rotation: %d", code)
	}
}
