// Package join adds nodes to a cluster. A controller makes join tokens
// (Tokens, kept as Secrets in the cluster, so every controller of a later
// highly available cluster sees the same ones) and serves joining nodes on
// its cluster port (Server): its CA, the certificates a node of the
// token's role gets for the keys it made itself, its registry to pull
// images from, and a node's leave. A joining node (Join) pins the CA named
// in its token before it sends the token, as K3s' and kubeadm's joins do.
package join

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/cameleer/cameleer/appliance/config"
)

// A join token reads
//
//	cmlj1.<role>.<sha256 of the cluster CA, hex>.<id>.<secret>.<controller HOST:PORT, base64url>
//
// The id names the token in lists and revocations; the controller keeps
// only the secret's SHA-256.
const tokenPrefix = "cmlj1"

// ErrBadToken is a string that is not a join token.
var ErrBadToken = errors.New("not a Cameleer join token")

// Token is a parsed join token.
type Token struct {
	Role   string
	CAHash [sha256.Size]byte
	ID     string
	Secret string
	// Server is the controller's cluster address, HOST:PORT.
	Server string
}

var (
	idPattern     = regexp.MustCompile(`^[a-z0-9]{6}$`)
	secretPattern = regexp.MustCompile(`^[a-z0-9]{16}$`)
)

// newToken makes a token with a fresh id and secret.
func newToken(role string, caHash [sha256.Size]byte, server string) Token {
	return Token{Role: role, CAHash: caHash, ID: randomText(6), Secret: randomText(16), Server: server}
}

// randomText is n characters of [a-z0-9], as kubeadm's token ids and
// secrets are.
func randomText(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[randIndex(len(alphabet))]
	}
	return string(b)
}

func randIndex(n int) int {
	// Rejection sampling keeps every character equally likely.
	limit := 256 - 256%n
	var b [1]byte
	for {
		rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// String formats the token for a user to paste.
func (t Token) String() string {
	return strings.Join([]string{tokenPrefix, t.Role, hex.EncodeToString(t.CAHash[:]), t.ID, t.Secret,
		base64.RawURLEncoding.EncodeToString([]byte(t.Server))}, ".")
}

// SecretHash is what the controller keeps of the secret.
func (t Token) SecretHash() string { return hashSecret(t.Secret) }

func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// ParseToken reads a token; surrounding white space is ignored.
func ParseToken(s string) (Token, error) {
	var t Token
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 6 || parts[0] != tokenPrefix {
		if strings.HasPrefix(s, "cmlr1.") {
			return t, fmt.Errorf("%w: this is a runner token; use it with `cameleer token redeem`", ErrBadToken)
		}
		return t, ErrBadToken
	}
	t.Role = parts[1]
	if t.Role != config.Worker {
		return t, fmt.Errorf("%w: role %q (this version joins workers)", ErrBadToken, t.Role)
	}
	ca, err := hex.DecodeString(parts[2])
	if err != nil || len(ca) != sha256.Size {
		return t, fmt.Errorf("%w: bad CA hash", ErrBadToken)
	}
	copy(t.CAHash[:], ca)
	t.ID, t.Secret = parts[3], parts[4]
	if !idPattern.MatchString(t.ID) || !secretPattern.MatchString(t.Secret) {
		return t, fmt.Errorf("%w: bad id or secret", ErrBadToken)
	}
	srv, err := base64.RawURLEncoding.DecodeString(parts[5])
	if err != nil {
		return t, fmt.Errorf("%w: bad controller address", ErrBadToken)
	}
	t.Server = string(srv)
	if host, port, err := net.SplitHostPort(t.Server); err != nil || net.ParseIP(host) == nil || port == "" {
		return t, fmt.Errorf("%w: the controller address %q is not IP:PORT", ErrBadToken, t.Server)
	}
	return t, nil
}
