package collector

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/cameleer/cameleer/internal/atomicfile"
)

// Tokens are what each app's agent wants to see before it hands over its
// telemetry: derived from a key of the runner's, so the runner knows every
// app's without keeping a list, and no app knows another's.
type Tokens struct{ key []byte }

// LoadTokens reads the key at path, making it on first use.
func LoadTokens(path string) (Tokens, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, 32)
		rand.Read(key)
		if _, err := atomicfile.WriteFile(path, key, 0o600); err != nil {
			return Tokens{}, fmt.Errorf("make the agents' key: %w", err)
		}
		return Tokens{key}, nil
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("read the agents' key: %w", err)
	}
	if len(key) != 32 {
		return Tokens{}, fmt.Errorf("the agents' key %s is damaged (%d bytes, want 32): remove it and redeploy the apps", path, len(key))
	}
	return Tokens{key}, nil
}

// For is the token of an app of an environment; "" without a key.
func (t Tokens) For(env, app string) string {
	if t.key == nil {
		return ""
	}
	mac := hmac.New(sha256.New, t.key)
	mac.Write([]byte(env + "/" + app))
	return hex.EncodeToString(mac.Sum(nil))
}
