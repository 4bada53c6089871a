// Package tunnel_test runs the control plane and a runner as real processes
// on loopback and goes through registration and the tunnel as a user would:
// from the command line and the API. `go test -short` skips it.
package tunnel_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// poll is how often a waiting test checks again.
const poll = 100 * time.Millisecond

type env struct {
	t      *testing.T
	dir    string
	sans   []string
	cpArgs []string
	// cpPrefix runs the control plane under another command (prlimit).
	cpPrefix []string
	cpBin    string
	runBin   string
	addr     string
	admin    string
	cp       *exec.Cmd
	http     *http.Client
	runnerMu sync.Mutex
	runLog   bytes.Buffer
	cpMu     sync.Mutex
	cpLog    bytes.Buffer
}

func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (e *env) startCP() {
	e.t.Helper()
	args := []string{"serve", "--data-dir", filepath.Join(e.dir, "cp"), "--listen", e.addr, "--url", "https://" + e.addr}
	for _, san := range e.sans {
		args = append(args, "--san", san)
	}
	args = append(args, e.cpArgs...)
	e.cp = exec.Command(e.cpBin, args...)
	if len(e.cpPrefix) > 0 {
		e.cp = exec.Command(e.cpPrefix[0], append(append(e.cpPrefix[1:], e.cpBin), args...)...)
	}
	e.cp.Stdout, e.cp.Stderr = &lockedWriter{&e.cpMu, &e.cpLog}, &lockedWriter{&e.cpMu, &e.cpLog}
	if err := e.cp.Start(); err != nil {
		e.t.Fatal(err)
	}
	testutil.Eventually(e.t, poll, 20*time.Second, "control plane healthy", func() error {
		resp, err := e.http.Get("https://" + e.addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

func (e *env) stopCP() {
	e.cp.Process.Signal(os.Interrupt)
	e.cp.Wait()
}

// call does an API request and decodes the JSON answer into out.
func (e *env) call(method, path, token string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "https://"+e.addr+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func (e *env) cameleer(args ...string) (string, error) {
	out, err := exec.Command(e.runBin, args...).CombinedOutput()
	return string(out), err
}

type runnerView struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Connected bool   `json:"connected"`
	Revoked   bool   `json:"revoked"`
}

// binaries are built once for every test of the package.
var binaries struct {
	once      sync.Once
	dir       string
	cp, run   string
	buildErrs error
}

// newEnv starts a control plane listening on addr (host:port).
func newEnv(t *testing.T, addr string, sans ...string) *env {
	return newEnvArgs(t, addr, sans, nil)
}

// newEnvArgs is newEnv with extra arguments for the control plane.
func newEnvArgs(t *testing.T, addr string, sans, cpArgs []string) *env {
	t.Helper()
	return newEnvPrefixed(t, addr, sans, cpArgs, nil)
}

// newEnvPrefixed is newEnvArgs with the control plane run by prefix (a
// command that execs the rest of its arguments, keeping its PID).
func newEnvPrefixed(t *testing.T, addr string, sans, cpArgs, prefix []string) *env {
	t.Helper()
	binaries.once.Do(func() {
		binaries.dir, binaries.buildErrs = os.MkdirTemp("", "cameleer-bin-")
		if binaries.buildErrs == nil {
			binaries.cp = build(t, binaries.dir, "github.com/cameleer/cameleer/cmd/cameleer-controlplane")
			binaries.run = build(t, binaries.dir, "github.com/cameleer/cameleer/cmd/cameleer")
		}
	})
	if binaries.buildErrs != nil {
		t.Fatal(binaries.buildErrs)
	}
	e := &env{t: t, dir: t.TempDir(), addr: addr, sans: sans, cpArgs: cpArgs, cpPrefix: prefix, cpBin: binaries.cp, runBin: binaries.run,
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	e.startCP()
	t.Cleanup(e.stopCP)
	b, err := os.ReadFile(filepath.Join(e.dir, "cp", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	e.admin = strings.TrimSpace(string(b))
	return e
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

func TestRegistrationAndTunnel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both binaries")
	}
	e := newEnv(t, freeAddr(t))
	dir := e.dir

	// Tenants, and a token for each.
	tokens := map[string]string{}
	for _, name := range []string{"acme", "globex"} {
		if code := e.call("POST", "/api/v1/tenants", e.admin, map[string]string{"name": name, "tier": "low"}, nil); code != http.StatusCreated {
			t.Fatalf("create tenant %s: %d", name, code)
		}
		var tok struct{ Token string }
		if code := e.call("POST", "/api/v1/tenants/"+name+"/api-tokens", e.admin, nil, &tok); code != http.StatusCreated {
			t.Fatalf("api token: %d", code)
		}
		tokens[name] = tok.Token
	}
	if code := e.call("POST", "/api/v1/tenants", tokens["acme"], map[string]string{"name": "evil", "tier": "low"}, nil); code != http.StatusForbidden {
		t.Errorf("a tenant token created a tenant: %d", code)
	}

	// A one-time token, redeemed once.
	var ott struct{ Token, Command string }
	if code := e.call("POST", "/api/v1/tenants/acme/runner-tokens", tokens["acme"], map[string]string{"ttl": "15m"}, &ott); code != http.StatusCreated {
		t.Fatalf("runner token: %d", code)
	}
	if !strings.HasPrefix(ott.Command, "cameleer token redeem "+ott.Token) {
		t.Errorf("install command %q", ott.Command)
	}
	runnerDir := filepath.Join(dir, "runner")
	// The first try fails after the control plane has used the token up
	// (ca.crt cannot be written: a directory is in its place, as a full
	// disk or a kill would stop it); the same command again succeeds, as
	// the same runner.
	blocker := filepath.Join(runnerDir, "controlplane", "ca.crt")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := e.cameleer("token", "redeem", ott.Token, "--data-dir", runnerDir, "--name", "edge-1"); err == nil || strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Fatalf("redeem with ca.crt blocked: %v, output %q; want a one-line error", err, out)
	}
	refused := func(what, wantMsg string, args ...string) {
		t.Helper()
		out, err := e.cameleer(args...)
		if err == nil || !strings.Contains(out, wantMsg) || strings.Count(strings.TrimSpace(out), "\n") > 0 {
			t.Errorf("%s: %v, output %q; want one line with %q", what, err, out, wantMsg)
		}
	}
	// The token is used up: another host (another key) is refused it.
	refused("reused token", "already used", "token", "redeem", ott.Token, "--data-dir", filepath.Join(dir, "other"))
	os.RemoveAll(blocker)
	if out, err := e.cameleer("token", "redeem", ott.Token, "--data-dir", runnerDir, "--name", "edge-1"); err != nil {
		t.Fatalf("redeem again after a failed store: %v\n%s", err, out)
	}
	if left, _ := filepath.Glob(filepath.Join(runnerDir, "controlplane", "redeem-*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if fi, err := os.Stat(filepath.Join(runnerDir, "controlplane", "client.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("client key: %v %v", fi, err)
	}
	refused("reused token", "already used", "token", "redeem", ott.Token, "--data-dir", filepath.Join(dir, "other"))
	var short struct{ Token string }
	e.call("POST", "/api/v1/tenants/acme/runner-tokens", tokens["acme"], map[string]string{"ttl": "1ms"}, &short)
	time.Sleep(10 * time.Millisecond)
	refused("expired token", "expired", "token", "redeem", short.Token, "--data-dir", filepath.Join(dir, "other"))
	// The same token with another CA pinned: refused before the secret is sent.
	var fresh struct{ Token string }
	e.call("POST", "/api/v1/tenants/acme/runner-tokens", tokens["acme"], nil, &fresh)
	parts := strings.Split(fresh.Token, ".")
	parts[1] = strings.Repeat("ab", 32)
	refused("wrong CA pin", "does not match", "token", "redeem", strings.Join(parts, "."), "--data-dir", filepath.Join(dir, "other"))
	refused("garbage token", "not a Cameleer one-time token", "token", "redeem", "hello", "--data-dir", filepath.Join(dir, "other"))
	// The pin-mismatch attempt did not use the token up.
	if out, err := e.cameleer("token", "redeem", fresh.Token, "--data-dir", filepath.Join(dir, "second")); err != nil {
		t.Errorf("the token survived a refused pin, but redeem failed: %v %s", err, out)
	}

	// The runner connects.
	e.startRunner(runnerDir, nil)
	var id string
	connected := func(want bool) func() error {
		return func() error {
			var rs []runnerView
			e.call("GET", "/api/v1/tenants/acme/runners", tokens["acme"], nil, &rs)
			for _, r := range rs {
				if r.Name == "edge-1" {
					id = r.ID
					if r.Connected == want {
						return nil
					}
				}
			}
			return fmt.Errorf("edge-1 not connected=%v: %+v", want, rs)
		}
	}
	testutil.Eventually(t, poll, 20*time.Second, "runner connected", connected(true))

	// The control plane reaches the runner's local API through the tunnel.
	var st struct {
		RunnerID string `json:"runnerId"`
		Tenant   string `json:"tenant"`
		Engine   bool   `json:"engine"`
	}
	if code := e.call("GET", "/api/v1/tenants/acme/runners/"+id+"/proxy/status", tokens["acme"], nil, &st); code != http.StatusOK || st.RunnerID != id || st.Tenant != "acme" || st.Engine {
		t.Errorf("proxied /status: %d %+v", code, st)
	}

	// Tenant isolation.
	if code := e.call("GET", "/api/v1/tenants/acme/runners", tokens["globex"], nil, nil); code != http.StatusNotFound {
		t.Errorf("globex listed acme's runners: %d", code)
	}
	if code := e.call("GET", "/api/v1/tenants/acme/runners/"+id+"/proxy/status", tokens["globex"], nil, nil); code != http.StatusNotFound {
		t.Errorf("globex proxied to acme's runner: %d", code)
	}
	if code := e.call("GET", "/api/v1/tenants/acme/runners", "", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code := e.call("GET", "/api/v1/tenants/acme/runners", "cmla_forged", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("forged token: %d", code)
	}

	// Handshakes the tunnel refuses.
	tunnelRefuses(t, e.addr, nil)
	tunnelRefuses(t, e.addr, foreignCert(t))

	// A restarted control plane gets its runner back by itself.
	e.stopCP()
	e.startCP()
	start := time.Now()
	testutil.Eventually(t, poll, 20*time.Second, "runner back after restart", connected(true))
	t.Logf("runner back %.1fs after the control plane answered again", time.Since(start).Seconds())

	// Revocation closes the tunnel now and for good.
	if code := e.call("DELETE", "/api/v1/tenants/acme/runners/"+id, tokens["acme"], nil, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	testutil.Eventually(t, poll, 20*time.Second, "runner disconnected", connected(false))
	testutil.Eventually(t, poll, 40*time.Second, "runner refused at its next handshake", func() error {
		e.runnerMu.Lock()
		defer e.runnerMu.Unlock()
		if !strings.Contains(e.runLog.String(), "refused this runner's certificate") {
			return fmt.Errorf("runner log:\n%s", e.runLog.String())
		}
		return nil
	})
	if err := connected(false)(); err != nil {
		t.Error(err)
	}
}

// tenant creates a tenant, as the admin.
func (e *env) tenant(name, tier string) {
	e.t.Helper()
	if code := e.call("POST", "/api/v1/tenants", e.admin, map[string]string{"name": name, "tier": tier}, nil); code != http.StatusCreated {
		e.t.Fatalf("create tenant %s: %d", name, code)
	}
}

// register makes a one-time token of tenant's and redeems it with
// `cameleer token redeem` into dataDir, as runner name.
func (e *env) register(tenant, name, dataDir string) {
	e.t.Helper()
	var ott struct{ Token string }
	if code := e.call("POST", "/api/v1/tenants/"+tenant+"/runner-tokens", e.admin, nil, &ott); code != http.StatusCreated {
		e.t.Fatalf("runner token: %d", code)
	}
	if out, err := e.cameleer("token", "redeem", ott.Token, "--data-dir", dataDir, "--name", name); err != nil {
		e.t.Fatalf("redeem: %v\n%s", err, out)
	}
}

// startRunner runs `cameleer run --no-engine` on dataDir, its output into
// log (nil: the env's runner log). stop kills it and waits; it also runs
// when the test ends.
func (e *env) startRunner(dataDir string, log io.Writer) (stop func()) {
	e.t.Helper()
	if log == nil {
		log = &e.runLog
	}
	cmd := exec.Command(e.runBin, "run", "--no-engine", "--data-dir", dataDir)
	cmd.Stdout, cmd.Stderr = &lockedWriter{&e.runnerMu, log}, &lockedWriter{&e.runnerMu, log}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	e.t.Cleanup(stop)
	return stop
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tunnelRefuses checks that a tunnel handshake with cert (nil: none) does
// not give a working tunnel.
func tunnelRefuses(t *testing.T, addr string, cert *tls.Certificate) {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"cameleer-tunnel/1"}, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return // refused in the handshake
	}
	defer c.Close()
	// TLS 1.3: the server's verdict on the client certificate arrives after
	// the client's side of the handshake.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("tunnel with cert %v: read %v, want a certificate alert", cert != nil, err)
	}
}

// foreignCert is a client certificate from a CA the control plane never saw.
func foreignCert(t *testing.T) *tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "intruder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
