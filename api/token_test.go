package api

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	ca := sha256.Sum256([]byte("ca"))
	for _, u := range []string{"", "https://cp.example.com:8443"} {
		tok, err := NewToken(ca, u)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseToken(" " + tok.String() + "\n")
		if err != nil {
			t.Fatalf("%q: %v", tok, err)
		}
		if got.CAHash != ca || string(got.Secret) != string(tok.Secret) || got.URL != u {
			t.Errorf("round trip of %q gave %+v", tok, got)
		}
		if got.SecretHash() != tok.SecretHash() || len(tok.SecretHash()) != 64 {
			t.Errorf("secret hash %q", tok.SecretHash())
		}
	}
}

func TestParseTokenRejects(t *testing.T) {
	ca := sha256.Sum256([]byte("ca"))
	tok, _ := NewToken(ca, "")
	good := tok.String()
	for name, s := range map[string]string{
		"empty":      "",
		"prefix":     strings.Replace(good, "cmlr1", "cmlr2", 1),
		"short ca":   strings.Replace(good, good[6:8], "", 1),
		"bad secret": good[:len(good)-3],
		"http url":   good + ".aHR0cDovL3g",
		"extra":      good + ".aHR0cHM6Ly94.more",
	} {
		if _, err := ParseToken(s); !errors.Is(err, ErrBadToken) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	tok, _ := NewToken(sha256.Sum256([]byte("ca")), "https://cp:8443")
	f.Add(tok.String())
	f.Add("cmlr1...")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil || again.CAHash != tok.CAHash || string(again.Secret) != string(tok.Secret) || again.URL != tok.URL {
			t.Fatalf("%q parsed, but its formatting %q does not round-trip: %v", s, tok.String(), err)
		}
	})
}
