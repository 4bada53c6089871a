package server

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cameleer/cameleer/controlplane/ca"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// TestServingRenewedWhileRunning: a control plane that runs for a year
// serves a renewed certificate, not an expired one: one its CA signs is
// made again before it nears expiry, and one from files (--tls-cert) is
// read again when the files change, if it still ends in the pinned root.
func TestServingRenewedWhileRunning(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	t.Run("signed by the CA", func(t *testing.T) {
		dir := t.TempDir()
		c, err := ca.Create(dir)
		if err != nil {
			t.Fatal(err)
		}
		s, err := servingFromCA(c, dir, []string{"localhost"}, log)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := s.get(nil)
		if s.due(time.Now()) {
			t.Error("a new serving certificate is due for renewal")
		}
		if !s.due(first.Leaf.NotAfter.Add(-ca.ServingRenewBefore + time.Hour)) {
			t.Errorf("not due %s before it expires", ca.ServingRenewBefore-time.Hour)
		}
		// That time has come (the clock cannot be moved here; ServingCert
		// makes a new one when the one on disk is near expiry or gone).
		os.Remove(filepath.Join(dir, "serving.crt"))
		s.due = func(time.Time) bool { return true }
		s.checked = time.Time{}
		got, _ := s.get(nil)
		if got.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
			t.Error("the serving certificate was not made again")
		}
		if got.Leaf.CheckSignatureFrom(s.anchor) != nil {
			t.Error("the new serving certificate is not signed by the pinned CA")
		}
	})
	t.Run("from files", func(t *testing.T) {
		dir := t.TempDir()
		root := testutil.NewIssuer(t, "root", nil)
		inter := testutil.NewIssuer(t, "issuing", &root)
		certFile, keyFile := testutil.ServingFiles(t, dir, inter, inter.Cert, root.Cert)
		s, err := servingFromFiles(certFile, keyFile, "127.0.0.1", log)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := s.get(nil)
		if s.checked = (time.Time{}); s.due(time.Now()) {
			t.Fatal("due with the files unchanged")
		}
		// Renewed by another tool, from another issuing CA of the same root.
		inter2 := testutil.NewIssuer(t, "issuing 2", &root)
		testutil.ServingFiles(t, dir, inter2, inter2.Cert, root.Cert)
		later := time.Now().Add(time.Minute)
		os.Chtimes(certFile, later, later)
		s.checked = time.Time{}
		renewed, _ := s.get(nil)
		if renewed.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
			t.Fatal("the changed files were not read again")
		}
		// A chain to another root is not taken: runners pin this one.
		other := testutil.NewIssuer(t, "other root", nil)
		testutil.ServingFiles(t, dir, other, other.Cert)
		later = later.Add(time.Minute)
		os.Chtimes(certFile, later, later)
		s.checked = time.Time{}
		if got, _ := s.get(nil); got.Leaf.SerialNumber.Cmp(renewed.Leaf.SerialNumber) != 0 {
			t.Error("a chain to another root replaced the serving certificate")
		}
	})
}

// TestURLHostIsAServingName: the host in --url is a name of the serving
// certificate without a --san for it.
func TestURLHostIsAServingName(t *testing.T) {
	s, _, err := New(Options{DataDir: t.TempDir(), URL: "https://cp.example.com:8443", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cert, _ := s.tlsCert.get(nil)
	if err := cert.Leaf.VerifyHostname("cp.example.com"); err != nil {
		t.Error(err)
	}
}
