package supportbundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/appliance/config"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"Authorization: Bearer abc.def-ghi":                                            "Authorization: Bearer [removed]",
		`{"password":"hunter2","user":"jane"}`:                                         `{"password":"[removed]","user":"jane"}`,
		"DB_PASSWORD=s3cr3t other=1":                                                   "DB_PASSWORD=[removed] other=1",
		"client-key-data: LS0tLS1CRUdJTg==":                                            "client-key-data: [removed]",
		"token cmlr1." + strings.Repeat("ab", 32) + ".c2VjcmV0-_x.aHR0cHM":             "token cmlr1." + strings.Repeat("ab", 32) + ".[removed].aHR0cHM",
		"a\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\nb": "a\n[private key removed]\nb",
		"jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl end":                    "jwt [jwt removed] end",
		"nothing to see: pods 3/3 ready":                                               "nothing to see: pods 3/3 ready",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// read returns the bundle's files by name.
func read(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(tr)
		files[strings.TrimPrefix(h.Name, "support-bundle/")] = string(c)
	}
}

// TestWithTheEngineDown: a data dir whose node is down (no engine, no
// status) still gives a bundle, with the host's facts and the logs, what
// failed said in errors.txt; and no key or secret the data dir holds is in
// any byte of it.
func TestWithTheEngineDown(t *testing.T) {
	dir := t.TempDir()
	c, err := config.Default(dir)
	if err != nil {
		t.Fatal(err)
	}
	c.NodeIP = "192.0.2.9"
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	const key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIOnlyInTheKeyFile\n-----END EC PRIVATE KEY-----\n"
	secrets := []string{"MHcCAQEEIOnlyInTheKeyFile", "hunter2-in-a-log", "Zm9vYmFyLWtleS1kYXRh", "tok-in-runner-json"}
	for name, content := range map[string]string{
		"controlplane/client.key":  key,
		"pki/ca.key":               key,
		"kubeconfig.yaml":          "users:\n- user:\n    client-key-data: Zm9vYmFyLWtleS1kYXRh\n",
		"controlplane/runner.json": `{"runnerId":"r1","name":"edge","token":"tok-in-runner-json"}`,
		"logs/cameleer.log":        "level=INFO msg=started\nlevel=WARN msg=\"login\" password=hunter2-in-a-log\n" + key,
		"logs/kubelet.log":         "I1206 kubelet started\n",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	down := func(context.Context) (any, error) { return nil, errors.New("the node is not running") }
	if err := Write(context.Background(), &out, dir, down); err != nil {
		t.Fatal(err)
	}
	files := read(t, out.Bytes())
	for _, want := range []string{"version.json", "config.json", "runner.json", "logs/cameleer.log", "logs/kubelet.log",
		"host/uname.txt", "host/mounts.txt", "host/meminfo.txt", "host/disk.txt", "host/preflight.txt", "errors.txt"} {
		if _, ok := files[want]; !ok {
			t.Errorf("no %s in the bundle (it has %d files)", want, len(files))
		}
	}
	if !strings.Contains(files["config.json"], "192.0.2.9") || !strings.Contains(files["logs/kubelet.log"], "kubelet started") {
		t.Errorf("config or logs not whole: %q %q", files["config.json"], files["logs/kubelet.log"])
	}
	for _, want := range []string{"status: the node is not running", "kubectl: no engine extracted"} {
		if !strings.Contains(files["errors.txt"], want) {
			t.Errorf("errors.txt does not say %q:\n%s", want, files["errors.txt"])
		}
	}
	raw, _ := io.ReadAll(func() io.Reader { zr, _ := gzip.NewReader(bytes.NewReader(out.Bytes())); return zr }())
	for _, s := range append(secrets, "PRIVATE KEY-----") {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("the bundle holds %q", s)
		}
	}
}
