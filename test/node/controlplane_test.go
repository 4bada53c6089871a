//go:build node

package node_test

import (
	"bytes"
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

	"github.com/cameleer/cameleer/internal/testutil"
)

// controlPlane is a real cameleer-controlplane process on loopback.
type controlPlane struct {
	addr  string
	admin string
	http  *http.Client
	cmd   *exec.Cmd
}

// startControlPlane builds and starts a control plane that lives as long
// as the test owner (a parent of t) does.
func startControlPlane(t, owner *testing.T) *controlPlane {
	dir := owner.TempDir()
	bin := filepath.Join(dir, "cameleer-controlplane")
	build := exec.Command("go", "build", "-o", bin, "github.com/cameleer/cameleer/cmd/cameleer-controlplane")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build control plane: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{addr: l.Addr().String(),
		http: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	l.Close()
	logf, err := os.Create(filepath.Join(dir, "controlplane.log"))
	if err != nil {
		t.Fatal(err)
	}
	cp.cmd = exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "cp"), "--listen", cp.addr, "--url", "https://"+cp.addr)
	cp.cmd.Stdout, cp.cmd.Stderr = logf, logf
	if err := cp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	owner.Cleanup(func() {
		cp.cmd.Process.Signal(os.Interrupt)
		cp.cmd.Wait()
		logf.Close()
		if owner.Failed() {
			b, _ := os.ReadFile(logf.Name())
			owner.Logf("control plane log:\n%s", b)
		}
	})
	testutil.Eventually(t, poll, 30*time.Second, "control plane up", func() error {
		b, err := os.ReadFile(filepath.Join(dir, "cp", "admin.token"))
		if err != nil {
			return err
		}
		cp.admin = strings.TrimSpace(string(b))
		_, err = cp.call("GET", "/healthz", nil, nil)
		return err
	})
	return cp
}

// call makes an API call as the admin, sending body as JSON and decoding
// the answer into out.
func (cp *controlPlane) call(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "https://"+cp.addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+cp.admin)
	resp, err := cp.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

// must is call that fails the test unless the answer has status want.
func (cp *controlPlane) must(t *testing.T, want int, method, path string, body, out any) {
	t.Helper()
	var raw json.RawMessage
	code, err := cp.call(method, path, body, &raw)
	if err != nil || code != want {
		t.Fatalf("%s %s: %d %v, want %d: %s", method, path, code, err, want, raw)
	}
	if out != nil {
		json.Unmarshal(raw, out)
	}
}

// upload posts a JAR as an app's artifact and returns its SHA-256.
func (cp *controlPlane) upload(t *testing.T, tenant, app string, jar []byte) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", app+".jar")
	fw.Write(jar)
	mw.Close()
	req, _ := http.NewRequest("POST", "https://"+cp.addr+"/api/v1/tenants/"+tenant+"/apps/"+app+"/artifacts", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+cp.admin)
	resp, err := cp.http.Do(req)
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
