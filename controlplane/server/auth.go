package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// API tokens are "cmla_" + 32 random bytes, base64url.
const apiTokenPrefix = "cmla_"

func newAPIToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return apiTokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

type principalKey struct{}

// principal is who a request comes from: the control plane's admin
// (Tenant "") or a tenant's token, with its role.
type principal struct {
	Tenant string
	Role   role
	// Token is the token's id (store.APITokenID), for the audit log.
	Token string
}

// canSee tells whether p may touch tenant's resources (as its role allows).
func (p principal) canSee(tenant string) bool { return p.Role == controlPlane || p.Tenant == tenant }

// authenticate resolves the bearer token; no or an unknown token is 401.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !strings.HasPrefix(tok, apiTokenPrefix) {
			httpjson.Error(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		t, err := s.store.APIToken(api.HashSecret([]byte(tok)))
		if errors.Is(err, store.ErrNotFound) {
			httpjson.Error(w, http.StatusUnauthorized, "unknown token")
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, principal{Tenant: t.Tenant, Role: storedRole(t.Tenant, t.Role), Token: store.APITokenID(t.Hash)})))
	})
}

func who(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}
