package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// files writes what a bundle carries, each with a marker a test can find
// in the tar to change.
func files(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for _, name := range Files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("the content of "+strings.ToUpper(name)+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func key(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func write(t *testing.T, priv ed25519.PrivateKey, fs []string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, "cameleer-v1", priv, fs); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestKeysRoundTrip(t *testing.T) {
	priv := key(t)
	pub := priv.Public().(ed25519.PublicKey)
	got, err := ParsePublicKey(FormatPublicKey(pub))
	if err != nil || !got.Equal(pub) {
		t.Errorf("public key: %v", err)
	}
	f := filepath.Join(t.TempDir(), "k")
	os.WriteFile(f, PrivateKeyPEM(priv), 0o600)
	if back, err := ReadPrivateKey(f); err != nil || !back.Equal(priv) {
		t.Errorf("private key: %v", err)
	}
	for _, bad := range []string{"", "not base64!", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("%q read as a key", bad)
		}
	}
}

// TestRefusesATamperedBundle: a genuine bundle extracts whole; one changed
// anywhere, signed by another key, cut short or with more in it is refused
// with one line naming why, and leaves nothing behind.
func TestRefusesATamperedBundle(t *testing.T) {
	priv := key(t)
	pub := priv.Public().(ed25519.PublicKey)
	fs := files(t)
	genuine := write(t, priv, fs)

	dst := t.TempDir()
	file := filepath.Join(t.TempDir(), "bundle.tar")
	os.WriteFile(file, genuine, 0o644)
	dir, err := Extract(file, pub, dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Files {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !strings.Contains(string(b), strings.ToUpper(name)) {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "cameleer")); err != nil || st.Mode().Perm()&0o100 == 0 {
		t.Errorf("cameleer is not executable: %v %v", st, err)
	}

	flip := func(marker string) []byte {
		b := bytes.Clone(genuine)
		i := bytes.Index(b, []byte(marker))
		if i < 0 {
			t.Fatalf("no %q in the bundle", marker)
		}
		b[i] ^= 0x20
		return b
	}
	extra := filepath.Join(t.TempDir(), "extra")
	os.WriteFile(extra, []byte("more"), 0o644)
	for name, c := range map[string]struct {
		tar  []byte
		want string
	}{
		"the binary changed":    {flip("CAMELEER\n"), "cameleer does not match its signature: SHA-256 "},
		"the checksums changed": {flip("  install.sh"), "SHA256SUMS does not match its signature"},
		"signed by another key": {write(t, key(t), fs), "SHA256SUMS does not match its signature"},
		"cut in a file":         {genuine[:bytes.Index(genuine, []byte("CAMELEER\n"))+3], "cameleer: not whole"},
		"cut between files":     {genuine[:len(genuine)/2], "not a signed bundle"},
		"a file more":           {write(t, priv, append(fs, extra)), `unexpected file "extra"`},
		"a file less":           {write(t, priv, fs[:2]), "no cameleer.spdx.json in it"},
		"not a bundle":          {[]byte("hello"), "not a whole tar"},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "bundle.tar")
			os.WriteFile(file, c.tar, 0o644)
			dst := t.TempDir()
			_, err := Extract(file, pub, dst)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasSuffix(err.Error(), ": nothing installed") || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v, want one line with %q", err, c.want)
			}
			if left, _ := os.ReadDir(dst); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
	if _, err := Extract(file, key(t).Public().(ed25519.PublicKey), t.TempDir()); !errors.Is(err, ErrTampered) {
		t.Errorf("checked against another key: %v", err)
	}
}

func TestInstallPutsTheBinaryInPlace(t *testing.T) {
	priv := key(t)
	file := filepath.Join(t.TempDir(), "bundle.tar")
	os.WriteFile(file, write(t, priv, files(t)), 0o644)
	bin := t.TempDir()
	if _, err := Install(file, "", bin); err == nil || !strings.Contains(err.Error(), "trusts no bundle") {
		t.Errorf("without a key: %v", err)
	}
	exe, err := Install(file, FormatPublicKey(priv.Public().(ed25519.PublicKey)), bin)
	if err != nil || exe != filepath.Join(bin, "cameleer") {
		t.Fatalf("%s %v", exe, err)
	}
	if left, _ := os.ReadDir(bin); len(left) != 1 {
		t.Errorf("in the bin dir: %v, want cameleer alone", left)
	}
}
