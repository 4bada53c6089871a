package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// A one-time token (OTT) registers one runner with a tenant. It reads
//
//	cmlr1.<sha256 of the control plane's CA, hex>.<secret, base64url>[.<control plane URL, base64url>]
//
// The runner pins the CA from the token before it sends the secret, as K3s'
// join tokens do. The control plane stores only the secret's SHA-256.
const tokenPrefix = "cmlr1"

// secretLen is the secret's length in bytes.
const secretLen = 32

// ErrBadToken is a string that is not a one-time token.
var ErrBadToken = errors.New("not a Cameleer one-time token")

// Token is a parsed one-time token.
type Token struct {
	// CAHash is the SHA-256 of the control plane CA's DER certificate.
	CAHash [sha256.Size]byte
	Secret []byte
	// URL is the control plane's address, if the token carries it.
	URL string
}

// NewToken makes a token with a fresh secret.
func NewToken(caHash [sha256.Size]byte, controlPlaneURL string) (Token, error) {
	t := Token{CAHash: caHash, Secret: make([]byte, secretLen), URL: controlPlaneURL}
	if _, err := rand.Read(t.Secret); err != nil {
		return t, err
	}
	return t, nil
}

// String formats the token for a user to paste.
func (t Token) String() string {
	s := tokenPrefix + "." + hex.EncodeToString(t.CAHash[:]) + "." + base64.RawURLEncoding.EncodeToString(t.Secret)
	if t.URL != "" {
		s += "." + base64.RawURLEncoding.EncodeToString([]byte(t.URL))
	}
	return s
}

// SecretHash is what the control plane stores: the SHA-256 of the secret, hex.
func (t Token) SecretHash() string { return HashSecret(t.Secret) }

// HashSecret is the stored form of a secret.
func HashSecret(secret []byte) string {
	h := sha256.Sum256(secret)
	return hex.EncodeToString(h[:])
}

// ParseToken reads a token; surrounding white space is ignored.
func ParseToken(s string) (Token, error) {
	var t Token
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 3 || len(parts) > 4 || parts[0] != tokenPrefix {
		return t, ErrBadToken
	}
	ca, err := hex.DecodeString(parts[1])
	if err != nil || len(ca) != sha256.Size {
		return t, fmt.Errorf("%w: bad CA hash", ErrBadToken)
	}
	copy(t.CAHash[:], ca)
	t.Secret, err = base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(t.Secret) != secretLen {
		return t, fmt.Errorf("%w: bad secret", ErrBadToken)
	}
	if len(parts) == 4 {
		u, err := base64.RawURLEncoding.DecodeString(parts[3])
		if err != nil {
			return t, fmt.Errorf("%w: bad URL", ErrBadToken)
		}
		t.URL = string(u)
		if pu, err := url.Parse(t.URL); err != nil || pu.Scheme != "https" || pu.Host == "" {
			return t, fmt.Errorf("%w: the control plane URL %q is not https://HOST[:PORT]", ErrBadToken, t.URL)
		}
	}
	return t, nil
}
