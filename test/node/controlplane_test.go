//go:build node

package node_test

import (
	"net/http"
	"testing"

	"github.com/cameleer/cameleer/internal/cptest"
)

// controlPlane is a real cameleer-controlplane process on loopback
// (internal/cptest, which test/docker shares), under the names this
// package's tests use.
type controlPlane struct {
	*cptest.ControlPlane
	addr  string
	admin string
	http  *http.Client
}

// startControlPlane builds and starts a control plane that lives as long
// as the test owner (a parent of t) does.
func startControlPlane(t, owner *testing.T) *controlPlane {
	cp := cptest.Start(t, owner)
	return &controlPlane{ControlPlane: cp, addr: cp.Addr, admin: cp.Admin, http: cp.HTTP}
}

// call makes an API call as the admin, sending body as JSON and decoding
// the answer into out.
func (cp *controlPlane) call(method, path string, body, out any) (int, error) {
	return cp.Call(method, path, body, out)
}

// must is call that fails the test unless the answer has status want.
func (cp *controlPlane) must(t *testing.T, want int, method, path string, body, out any) {
	t.Helper()
	cp.Must(t, want, method, path, body, out)
}

// upload posts a JAR as an app's artifact and returns its SHA-256.
func (cp *controlPlane) upload(t *testing.T, tenant, app string, jar []byte) string {
	t.Helper()
	return cp.Upload(t, tenant, app, jar)
}
