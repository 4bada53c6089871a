package secrets

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealUnseal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.key")
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
	where := Name{Tenant: "acme", Environment: "prod", Name: "DB_PASSWORD"}
	sealed, err := b.Seal([]byte("s3cr3t"), where)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(sealed), []byte("s3cr3t")) {
		t.Fatal("sealed value shows the plaintext")
	}
	// The same key, opened again, opens it.
	again, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Unseal(sealed, where); err != nil || string(got) != "s3cr3t" {
		t.Fatalf("unseal: %q %v", got, err)
	}
	// Moved to another place, tampered with, or under another key: refused.
	for _, moved := range []Name{{"globex", "prod", "DB_PASSWORD"}, {"acme", "dev", "DB_PASSWORD"}, {"acme", "prod", "DB_USER"}, {"acme\x00prod", "", "DB_PASSWORD"}} {
		if _, err := again.Unseal(sealed, moved); !errors.Is(err, ErrTampered) {
			t.Errorf("moved to %+v: %v", moved, err)
		}
	}
	if _, err := again.Unseal(sealed[:len(sealed)-4]+"AAAA", where); !errors.Is(err, ErrTampered) {
		t.Errorf("tampered: %v", err)
	}
	other, _ := Open(filepath.Join(t.TempDir(), "other.key"))
	if _, err := other.Unseal(sealed, where); !errors.Is(err, ErrTampered) {
		t.Errorf("other key: %v", err)
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil {
		t.Error("a short key was accepted")
	}
}
