package collector

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"

	"github.com/cameleer/cameleer/internal/keyfile"
)

// Tokens are what each app's agent wants to see before it hands over its
// telemetry: derived from a key of the runner's, so the runner knows every
// app's without keeping a list, and no app knows another's.
type Tokens struct{ key []byte }

// LoadTokens reads the key at path, making it on first use.
func LoadTokens(path string) (Tokens, error) {
	key, err := keyfile.Load(path, "agents' key", "remove it and redeploy the apps")
	if err != nil {
		return Tokens{}, err
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
