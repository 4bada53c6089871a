package join

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/certs"
)

func TestTokenRoundTrip(t *testing.T) {
	tok := newToken("worker", sha256.Sum256([]byte("ca")), "10.0.0.2:6444")
	got, err := ParseToken(" " + tok.String() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got != tok {
		t.Fatalf("parsed %+v, want %+v", got, tok)
	}
	if len(tok.ID) != 6 || len(tok.Secret) != 16 || strings.Trim(tok.ID+tok.Secret, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Errorf("id %q, secret %q", tok.ID, tok.Secret)
	}
	if other := newToken("worker", tok.CAHash, tok.Server); other.ID == tok.ID || other.Secret == tok.Secret {
		t.Error("two tokens share an id or a secret")
	}
}

func TestParseTokenRefuses(t *testing.T) {
	good := newToken("worker", sha256.Sum256([]byte("ca")), "10.0.0.2:6444").String()
	parts := strings.Split(good, ".")
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, ".")
	}
	for name, c := range map[string]struct{ token, says string }{
		"empty":        {"", "not a Cameleer join token"},
		"runner token": {"cmlr1.abc.def", "use it with `cameleer token redeem`"},
		"role":         {with(1, "controller"), `role "controller"`},
		"ca hash":      {with(2, "abc"), "bad CA hash"},
		"id":           {with(3, "ABCDEF"), "bad id or secret"},
		"secret":       {with(4, "short"), "bad id or secret"},
		"server":       {with(5, "bm9wZQ"), "is not IP:PORT"},
		"cut":          {good[:len(good)-20], ""},
	} {
		_, err := ParseToken(c.token)
		if err == nil || !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want an ErrBadToken saying %q", name, err, c.says)
		}
	}
}

func TestCheck(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	tok := newToken("worker", sha256.Sum256([]byte("ca")), "10.0.0.2:6444")
	valid := Record{ID: tok.ID, Role: "worker", Expires: now.Add(time.Hour), secretHash: tok.SecretHash()}
	used := valid
	used.UsedBy, used.UsedAt, used.usedKey = "w1", now.Add(-time.Minute), "key1"
	expired := valid
	expired.Expires = now
	wrongSecret := tok
	wrongSecret.Secret = "0000000000000000"
	for name, c := range map[string]struct {
		r           Record
		tok         Token
		node, key   string
		again       bool
		refusedWith string
	}{
		"valid":                        {r: valid, tok: tok, node: "w1", key: "key1"},
		"the same node and key again":  {r: used, tok: tok, node: "w1", key: "key1", again: true},
		"used by another node":         {r: used, tok: tok, node: "w2", key: "key2", refusedWith: "was used by node w1"},
		"used, the same name, new key": {r: used, tok: tok, node: "w1", key: "key2", refusedWith: "was used by node w1"},
		"expired":                      {r: expired, tok: tok, node: "w1", key: "key1", refusedWith: "expired at"},
		"wrong secret":                 {r: valid, tok: wrongSecret, node: "w1", key: "key1", refusedWith: "is not known to this cluster"},
	} {
		again, err := check(c.r, c.tok, c.node, c.key, now)
		var re *RefusedError
		switch {
		case c.refusedWith == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case c.refusedWith != "" && (!errors.As(err, &re) || !strings.Contains(re.Reason, c.refusedWith)):
			t.Errorf("%s: %v, want refused with %q", name, err, c.refusedWith)
		case again != c.again:
			t.Errorf("%s: again %t", name, again)
		}
	}
}

func TestRecordSecretRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	r := Record{ID: "abc123", Role: "worker", Description: "rack 2", Created: now, Expires: now.Add(time.Hour),
		UsedBy: "w1", UsedAt: now, secretHash: "h", usedKey: "k", resourceVersion: "7"}
	if got := recordOf(r.secret()); got != r {
		t.Fatalf("got %+v, want %+v", got, r)
	}
	if s := (Record{UsedBy: "w1"}).State(now); s != "used by w1" {
		t.Error(s)
	}
}

func TestCSRKey(t *testing.T) {
	key, err := certs.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := certs.CSR(key, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := csrKey(string(csr)); err != nil {
		t.Fatal(err)
	}
	if _, err := csrKey(string(csr[:len(csr)/2])); err == nil {
		t.Error("a cut request was read")
	}
	if _, err := csrKey("not pem"); err == nil {
		t.Error("no request was read")
	}
}
