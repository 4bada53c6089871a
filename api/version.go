// Package api is the contract between a runner and the control plane, the
// two binaries that ship apart: the one-time token, enrollment, what each
// side calls the other for through the tunnel (heartbeats, renewals,
// deployment commands and reports, artifacts, egress) and the shapes they
// send. What the control plane's users call is its own API (see
// docs/api/openapi.yaml), not this package.
package api

import (
	"net/http"
	"strconv"
)

// The capability version of the contract. Each side sends its version in
// the VersionHeader of every request it makes of the other and every
// answer it gives; a request without one is from version 1 (before the
// header). The control plane serves runners from MinVersion on: a runner
// older than that is refused with 426 Upgrade Required and a line that
// says so; a newer one speaks down to the control plane's version, which
// every answer tells it. What needs more than version 1 says which.
const (
	Version    = 2
	MinVersion = 1
	// VersionEgress is the first version whose runners take an
	// environment's egress (RunnerEgressPath).
	VersionEgress = 2
)

// VersionHeader carries a side's capability version.
const VersionHeader = "Cameleer-Api-Version"

// PeerVersion is the version a request or answer's header says: 1 when it
// has none, 0 when it is not a number.
func PeerVersion(h http.Header) int {
	v := h.Get(VersionHeader)
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
