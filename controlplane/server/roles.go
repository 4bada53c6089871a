package server

import (
	"fmt"
	"net/http"

	"github.com/cameleer/cameleer/internal/httpjson"
)

// A role is what an API token may do; each may do what the ones before it
// may. Tenant tokens are viewers, operators or admins of their tenant; the
// control plane's own admin tokens (of no tenant) are above them all.
type role int

const (
	// viewer reads everything of its tenant and changes nothing.
	viewer role = iota + 1
	// operator also deploys, promotes, stops, starts and restarts apps,
	// and uploads artifacts.
	operator
	// admin also manages its tenant: environments, their config, secrets
	// and egress, API and runner tokens, revoking runners.
	admin
	// controlPlane is an admin token of no tenant: tenants, their
	// retention, admin tokens, metrics, and every tenant's resources.
	controlPlane
)

// roleNames are the roles a tenant token is made with, as the API says them.
var roleNames = map[string]role{"viewer": viewer, "operator": operator, "admin": admin}

func (r role) String() string {
	for name, v := range roleNames {
		if v == r {
			return name
		}
	}
	if r == controlPlane {
		return "control plane admin"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// storedRole reads a token's stored role: tokens made before roles were
// are admins of their tenant, as they could do everything then.
func storedRole(tenant, name string) role {
	if tenant == "" {
		return controlPlane
	}
	if r, ok := roleNames[name]; ok {
		return r
	}
	return admin
}

// parseRole reads the role a new tenant token is asked for; none is admin.
func parseRole(name string) (role, error) {
	if name == "" {
		return admin, nil
	}
	r, ok := roleNames[name]
	if !ok {
		return 0, fmt.Errorf("role %q must be viewer, operator or admin", name)
	}
	return r, nil
}

// needs answers 403, naming the role needed, to a token whose role is
// below r; a refused call changes nothing.
func needs(r role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if have := who(req).Role; have < r {
			httpjson.Error(w, http.StatusForbidden, fmt.Sprintf("this needs the %s role; this token's is %s", r, have))
			return
		}
		h(w, req)
	}
}
