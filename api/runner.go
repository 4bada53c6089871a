package api

import "time"

// Heartbeat is what a runner posts through its tunnel every 10 seconds.
// The control plane keeps the version and when it last heard one, and acts
// on Certificate; the rest describes the host.
type Heartbeat struct {
	Version  string    `json:"version"`
	Hostname string    `json:"hostname"`
	CPUs     int       `json:"cpus"`
	Engine   bool      `json:"engine"`
	Time     time.Time `json:"time"`
	// Certificate is the serial number of the client certificate the
	// runner holds: once it is the newest, the one before it is refused.
	Certificate string `json:"certificate,omitempty"`
}

// StatusPath is the runner's local API status endpoint.
const StatusPath = "/status"

// SupportBundlePath is where a runner answers its node's support bundle
// (a tar.gz, docs/install.md) through the tunnel.
const SupportBundlePath = "/support-bundle"

// RunnerUpgradePath is where a runner takes an upgrade from its control
// plane (POST UpgradeRequest, through the tunnel): it fetches the binary
// at RunnerBinaryPath, checks it, and runs `cameleer upgrade` with it,
// which rolls back by itself (docs/install.md).
const RunnerUpgradePath = "/upgrade"

// RunnerBinaryPath is where a runner fetches, through its tunnel, the
// cameleer binary its control plane serves.
const RunnerBinaryPath = "/api/v1/runner/binary"

// UpgradeRequest names the binary an upgrade moves to: the one the control
// plane serves, by its version and SHA-256.
type UpgradeRequest struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// UpgradeAnswer is a runner's answer to an UpgradeRequest: the upgrade
// has begun; its outcome is in the runner's status (node.lastUpgrade).
type UpgradeAnswer struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// RunnerStatus is what the runner's local API answers on /status.
type RunnerStatus struct {
	RunnerID string `json:"runnerId"`
	Name     string `json:"name"`
	Tenant   string `json:"tenant"`
	Version  string `json:"version"`
	Hostname string `json:"hostname"`
	Engine   bool   `json:"engine"`
	// Orchestrator runs the runner's apps: kubernetes (the engine),
	// docker, or "" (none: --no-engine).
	Orchestrator string    `json:"orchestrator,omitempty"`
	Since        time.Time `json:"since"`
	// Node is the engine's status when the engine runs.
	Node any `json:"node,omitempty"`
}
