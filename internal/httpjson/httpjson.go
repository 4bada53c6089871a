// Package httpjson writes JSON answers and reads JSON errors the way both
// the control plane's API and the runner's local API do: an error is
// {"error": "one line"}.
package httpjson

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Write answers with v as JSON.
func Write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// Error answers with an error message.
func Error(w http.ResponseWriter, code int, msg string) {
	Write(w, code, map[string]string{"error": msg})
}

// ErrorText is the message of an error answer's body, or the body itself
// when it is not one.
func ErrorText(body []byte) string {
	var e struct{ Error string }
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}
