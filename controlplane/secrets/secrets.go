// Package secrets seals tenants' secret values at rest with AES-256-GCM.
// The key is made on first use in the control plane's data dir (0600) and
// never leaves it; a sealed value is bound to where it belongs (tenant,
// environment, name), so it cannot be moved to another place in the store
// and still open.
package secrets

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/cameleer/cameleer/internal/keyfile"
)

// Box seals and opens values.
type Box struct{ aead cipher.AEAD }

// Open reads the key at path, making it first if there is none.
func Open(path string) (*Box, error) {
	key, err := keyfile.Load(path, "secrets key", "the secrets sealed with it cannot be opened; restore it from a backup")
	if err != nil {
		return nil, err
	}
	aead, err := keyfile.GCM(key)
	if err != nil {
		return nil, err
	}
	return &Box{aead}, nil
}

// Name is where a secret belongs: a sealed value opens only there.
type Name struct{ Tenant, Environment, Name string }

// ad binds a sealed value to its place; it is what the first sealed
// values were bound with (the three joined by NUL), so they still open.
func (n Name) ad() []byte { return []byte(n.Tenant + "\x00" + n.Environment + "\x00" + n.Name) }

// Seal encrypts value for where; the result is text.
func (b *Box) Seal(value []byte, where Name) (string, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := b.aead.Seal(nonce, nonce, value, where.ad())
	return "v1:" + base64.StdEncoding.EncodeToString(out), nil
}

// ErrTampered is a sealed value that does not open.
var ErrTampered = errors.New("sealed value does not open: wrong key, wrong place or tampered")

// Unseal opens what Seal made for the same place.
func (b *Box) Unseal(sealed string, where Name) ([]byte, error) {
	raw, ok := strings.CutPrefix(sealed, "v1:")
	if !ok {
		return nil, ErrTampered
	}
	data, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(data) < b.aead.NonceSize() {
		return nil, ErrTampered
	}
	n := b.aead.NonceSize()
	out, err := b.aead.Open(nil, data[:n], data[n:], where.ad())
	if err != nil {
		return nil, ErrTampered
	}
	return out, nil
}
