package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

type requestIDKey struct{}

// withRequestID gives every request an id, in its context and in the
// X-Request-Id answer header: what a user quotes, and what the log says
// next to an internal error.
func withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 8)
		rand.Read(b)
		id := hex.EncodeToString(b)
		w.Header().Set("X-Request-Id", id)
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

// fail answers err: what a user caused (a *httpjson.StatusError, a quota
// reached) with its status and its line; anything else is 500 with the
// request's id and nothing of the error, which goes to the log with that
// id: a file path or a store's message is not the client's to read.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se *httpjson.StatusError
	switch {
	case errors.As(err, &se):
		httpjson.Error(w, se.Status, se.Msg)
	case errors.Is(err, store.ErrQuota):
		httpjson.Error(w, http.StatusTooManyRequests, err.Error())
	default:
		id := requestID(r)
		s.log.Error("internal error", "requestId", id, "method", r.Method, "path", r.URL.Path, "err", err)
		httpjson.Write(w, http.StatusInternalServerError, map[string]string{"error": "internal error; the control plane's log has it under request id " + id, "requestId": id})
	}
}
