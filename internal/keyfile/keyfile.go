// Package keyfile keeps the 32-byte keys the control plane and the runner
// make for themselves on first use (the secrets' key, the agents' tokens'
// key, the originals' key): whole or not at all, durable, 0600.
package keyfile

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"github.com/cameleer/cameleer/internal/atomicfile"
)

// Len is a key's length: AES-256's, and HMAC-SHA256's block of it.
const Len = 32

// Load reads the key at path, making it first if there is none. what
// names the key in errors; lost says what a damaged one costs.
func Load(path, what, lost string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, Len)
		rand.Read(key)
		// A key cut short would seal nothing anyone could open.
		if _, err := atomicfile.WriteFile(path, key, 0o600); err != nil {
			return nil, fmt.Errorf("make the %s: %w", what, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the %s: %w", what, err)
	}
	if len(key) != Len {
		return nil, fmt.Errorf("the %s %s is damaged (%d bytes, want %d): %s", what, path, len(key), Len, lost)
	}
	return key, nil
}

// GCM is AES-256-GCM under key.
func GCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
