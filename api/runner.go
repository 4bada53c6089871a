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
