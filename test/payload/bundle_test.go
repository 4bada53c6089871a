//go:build payload

package payload_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBundle installs from the bundle `make bundle` wrote, both ways
// (install.sh --bundle, with the key it was made with, and cameleer install
// --bundle, checked against the key baked into bin/cameleer), as far as an
// installed node that is not started; and refuses the same bundle with one
// byte of its binary changed, installing nothing.
func TestBundle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installs as root")
	}
	bin, file := env(t, "CAMELEER_BIN"), env(t, "CAMELEER_BUNDLE")
	var v struct{ SigningKey string }
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil || json.Unmarshal(out, &v) != nil || v.SigningKey == "" {
		t.Fatalf("version names no signing key: %s %v", out, err)
	}

	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(t.TempDir(), "tampered.tar")
	b := bytes.Clone(raw)
	b[bytes.Index(b, []byte("\x7fELF"))+4096] ^= 1
	os.WriteFile(tampered, b, 0o644)
	script := filepath.Join(t.TempDir(), "install.sh")
	untar := exec.Command("tar", "-xOf", file, "--wildcards", "*/install.sh")
	if untar.Stdout, err = os.Create(script); err != nil {
		t.Fatal(err)
	}
	if err := untar.Run(); err != nil {
		t.Fatalf("the bundle's install.sh: %v", err)
	}

	ways := map[string]func(bundle, binDir, dataDir string) *exec.Cmd{
		"install.sh --bundle": func(bundle, binDir, dataDir string) *exec.Cmd {
			return exec.Command("sh", script, "--bundle", bundle, "--bin-dir", binDir, "--data-dir", dataDir, "--no-start")
		},
		"cameleer install --bundle": func(bundle, binDir, dataDir string) *exec.Cmd {
			return exec.Command(bin, "install", "--bundle", bundle, "--bin-dir", binDir, "--data-dir", dataDir, "--no-start")
		},
	}
	want, _ := os.ReadFile(bin)
	for name, cmd := range ways {
		t.Run(name, func(t *testing.T) {
			binDir, dataDir := t.TempDir(), filepath.Join(t.TempDir(), "data")
			out, err := cmd(tampered, binDir, dataDir).CombinedOutput()
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if err == nil || len(lines) != 1 || !strings.Contains(lines[0], "nothing installed") {
				t.Errorf("a tampered bundle: %v\n%s", err, out)
			}
			if left, _ := os.ReadDir(binDir); len(left) != 0 {
				t.Errorf("a tampered bundle left %v", left)
			}
			if _, err := os.Stat(dataDir); err == nil {
				t.Errorf("a tampered bundle made %s", dataDir)
			}

			out, err = cmd(file, binDir, dataDir).CombinedOutput()
			t.Cleanup(func() { exec.Command(bin, "reset", "--data-dir", dataDir).Run() })
			if err != nil || !strings.Contains(string(out), "signature and checksums hold") || !strings.Contains(string(out), "Installed; not started") {
				t.Fatalf("the bundle: %v\n%s", err, out)
			}
			if got, err := os.ReadFile(filepath.Join(binDir, "cameleer")); err != nil || !bytes.Equal(got, want) {
				t.Errorf("the installed cameleer is not the bundle's (%v)", err)
			}
		})
	}
}
