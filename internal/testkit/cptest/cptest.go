// Package cptest runs a real cameleer-controlplane process on loopback for
// end-to-end tests, and calls its API as the admin. It is test support:
// only tests import it.
package cptest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// ControlPlane is a running control plane.
type ControlPlane struct {
	// Addr is where it serves API and tunnel: 127.0.0.1:PORT, or the
	// address StartOn was given.
	Addr string
	// Admin is the admin's API token.
	Admin string
	// HTTP trusts its certificate without checking it.
	HTTP *http.Client
	// LogFile has its output.
	LogFile string

	bin, dir string
	args     []string
	log      *os.File
	cmd      *exec.Cmd
}

// CAFile is the CA it made, which runners pin.
func (cp *ControlPlane) CAFile() string { return filepath.Join(cp.DataDir(), "pki", "ca.crt") }

// DataDir is where it keeps its state.
func (cp *ControlPlane) DataDir() string { return filepath.Join(cp.dir, "cp") }

// start runs the control plane on its data dir and address and waits
// until it answers.
func (cp *ControlPlane) start(t testing.TB) {
	t.Helper()
	cp.cmd = exec.Command(cp.bin, append([]string{"serve", "--data-dir", cp.DataDir(), "--listen", cp.Addr, "--url", "https://" + cp.Addr}, cp.args...)...)
	cp.cmd.Stdout, cp.cmd.Stderr = cp.log, cp.log
	if err := cp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 200*time.Millisecond, 30*time.Second, "control plane up", func() error {
		b, err := os.ReadFile(filepath.Join(cp.dir, "cp", "admin.token"))
		if err != nil {
			return err
		}
		cp.Admin = strings.TrimSpace(string(b))
		_, err = cp.Call("GET", "/healthz", nil, nil)
		return err
	})
}

// Stop stops the control plane (SIGINT) and waits for it.
func (cp *ControlPlane) Stop() {
	if cp.cmd == nil {
		return
	}
	cp.cmd.Process.Signal(os.Interrupt)
	cp.cmd.Wait()
	cp.cmd = nil
}

// Restart starts a stopped control plane again, on the same data dir and
// address.
func (cp *ControlPlane) Restart(t testing.TB) {
	t.Helper()
	cp.start(t)
}

// RestartWith starts a stopped control plane again with args in place of
// those it was started with.
func (cp *ControlPlane) RestartWith(t testing.TB, args ...string) {
	t.Helper()
	cp.args = args
	cp.start(t)
}

// Start builds and starts a control plane that lives as long as owner
// (t itself, or a parent of t) does; t is what fails if it does not come
// up. args go to `serve` after the data dir, address and URL. When owner
// ends, the control plane is stopped, and its log shown if owner failed.
func Start(t, owner testing.TB, args ...string) *ControlPlane {
	t.Helper()
	return StartOn(t, owner, "127.0.0.1", args...)
}

// StartOn is Start with the control plane on ip, where runners in
// network namespaces or containers of the test reach it.
func StartOn(t, owner testing.TB, ip string, args ...string) *ControlPlane {
	t.Helper()
	dir := owner.TempDir()
	bin := filepath.Join(dir, "cameleer-controlplane")
	build := exec.Command("go", "build", "-o", bin, "github.com/cameleer/cameleer/cmd/cameleer-controlplane")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build control plane: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	cp := &ControlPlane{Addr: l.Addr().String(), LogFile: filepath.Join(dir, "controlplane.log"),
		HTTP: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	l.Close()
	logf, err := os.Create(cp.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	cp.bin, cp.dir, cp.args, cp.log = bin, dir, args, logf
	cp.start(t)
	owner.Cleanup(func() {
		cp.Stop()
		logf.Close()
		if owner.Failed() {
			b, _ := os.ReadFile(cp.LogFile)
			owner.Logf("control plane log:\n%s", b)
		}
	})
	return cp
}

// Request sends a request as the admin to path (/api/v1/...); the caller
// closes the answer's body.
func (cp *ControlPlane) Request(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "https://"+cp.Addr+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cp.Admin)
	return cp.HTTP.Do(req)
}

// Call makes an API call as the admin, sending body as JSON and decoding
// the answer into out.
func (cp *ControlPlane) Call(method, path string, body, out any) (int, error) {
	return cp.CallAs(cp.Admin, nil, method, path, body, out)
}

// CallAs is Call with another token, and header's fields besides.
func (cp *ControlPlane) CallAs(token string, header http.Header, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "https://"+cp.Addr+path, rd)
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := cp.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

// Must is Call that fails the test unless the answer has status want.
func (cp *ControlPlane) Must(t testing.TB, want int, method, path string, body, out any) {
	t.Helper()
	var raw json.RawMessage
	code, err := cp.Call(method, path, body, &raw)
	if err != nil || code != want {
		t.Fatalf("%s %s: %d %v, want %d: %s", method, path, code, err, want, raw)
	}
	if out != nil {
		json.Unmarshal(raw, out)
	}
}

// Upload posts a JAR as an app's artifact and returns its SHA-256.
func (cp *ControlPlane) Upload(t testing.TB, tenant, app string, jar []byte) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", app+".jar")
	fw.Write(jar)
	mw.Close()
	req, _ := http.NewRequest("POST", "https://"+cp.Addr+"/api/v1/tenants/"+tenant+"/apps/"+app+"/artifacts", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+cp.Admin)
	resp, err := cp.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ SHA256, Error string }
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("upload: %s %s", resp.Status, out.Error)
	}
	return out.SHA256
}
