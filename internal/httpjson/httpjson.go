// Package httpjson is how both the control plane's API and the runner's
// local API speak JSON over HTTP, on either end: an answer is JSON, an
// error is {"error": "one line"}, a body is one JSON object of bounded
// size, and an answer other than 2xx is a *StatusError.
package httpjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Bounds of what Decode reads: a request to the API, and what one side of
// the runner/control-plane wire sends the other (DecodeWire, Call).
const (
	MaxRequest = 64 << 10
	MaxWire    = 1 << 20
)

// StatusError is an HTTP answer other than 2xx, as a client got it, or as
// a service means it to be answered: its status and its one-line message.
type StatusError struct {
	Status int
	Msg    string
}

func (e *StatusError) Error() string { return e.Msg }

// Errorf makes a StatusError.
func Errorf(status int, format string, a ...any) *StatusError {
	return &StatusError{Status: status, Msg: fmt.Sprintf(format, a...)}
}

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

// Decode reads a request to the API into v: one JSON object of at most
// MaxRequest bytes, no field v does not have. An empty body is an error
// unless optional (v is then left as it is). The error is a *StatusError
// (400 or 413) to answer with.
func Decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	return decode(w, r, v, MaxRequest, true, optional)
}

// DecodeWire reads what the other side of the runner/control-plane wire
// sent into v: one JSON object of at most MaxWire bytes. Fields v does not
// have are ignored: the other side may be a newer version.
func DecodeWire(w http.ResponseWriter, r *http.Request, v any) error {
	return decode(w, r, v, MaxWire, false, false)
}

func decode(w http.ResponseWriter, r *http.Request, v any, limit int64, strict, optional bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF) && optional:
		return nil
	case errors.Is(err, io.EOF):
		err = errors.New("empty; want a JSON object")
	case errors.As(err, &tooLarge):
		return Errorf(http.StatusRequestEntityTooLarge, "bad request body: over %d bytes", limit)
	case err == nil && dec.Decode(&json.RawMessage{}) != io.EOF:
		err = errors.New("more after the JSON object")
	}
	if err != nil {
		return Errorf(http.StatusBadRequest, "bad request body: %v", err)
	}
	return nil
}

// Call sends in (nil: no body; []byte as it is; anything else as JSON)
// with method to url through c, and decodes a 2xx answer of at most MaxWire
// bytes into out (nil: discard it). Any other answer is a *StatusError.
func Call(ctx context.Context, c *http.Client, method, url string, in, out any) error {
	var body io.Reader
	switch v := in.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, url, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxWire))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return &StatusError{Status: resp.StatusCode, Msg: ErrorText(raw)}
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: the answer: %w", method, url, err)
	}
	return nil
}

// Unwrap is err without the *url.Error net/http wraps a failed call in
// (its method and URL): for one-line messages that name the peer already.
func Unwrap(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
