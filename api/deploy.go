package api

import "encoding/json"

// Phase is where a deployment stands.
type Phase string

// Phases of a deployment, in the order a deployment passes them; failed can
// follow any of the others.
const (
	PhaseValidating Phase = "validating"
	PhaseBuilding   Phase = "building"
	PhasePushing    Phase = "pushing"
	PhaseRollingOut Phase = "rolling-out"
	PhaseRunning    Phase = "running"
	PhaseFailed     Phase = "failed"
)

// Done says whether a deployment in phase p has finished, well or not.
func Done(p Phase) bool { return p == PhaseRunning || p == PhaseFailed }

// KnownPhase says whether p is one of the phases.
func KnownPhase(p Phase) bool {
	switch p {
	case PhaseValidating, PhaseBuilding, PhasePushing, PhaseRollingOut, PhaseRunning, PhaseFailed:
		return true
	}
	return false
}

// DefaultAppPort is where an app listens for HTTP unless it says otherwise;
// AgentPort is where the agent in every app serves the JVM's facts.
const (
	DefaultAppPort = 8080
	AgentPort      = 9464
)

// Deploy is the command the control plane sends a runner, through the
// tunnel, to run an app in an environment: either an artifact to build
// (Artifact, the JAR's SHA-256, fetched from ArtifactPath) or an image the
// runner already has (Image, for a promotion).
type Deploy struct {
	ID          string            `json:"id"`
	Environment string            `json:"environment"`
	App         string            `json:"app"`
	Artifact    string            `json:"artifact,omitempty"`
	Image       string            `json:"image,omitempty"`
	Replicas    int               `json:"replicas"`
	Port        int               `json:"port"`
	Env         map[string]string `json:"env,omitempty"`
	// Secrets are the environment's secrets in clear: they travel only in
	// this command, inside the mutually authenticated tunnel.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Egress is what the environment's apps may reach outside it; the
	// runner applies it before it rolls the app out.
	Egress Egress `json:"egress"`
}

// DeployReport is what a runner tells the control plane of a deployment's
// progress. Image is the built image's digest once known; URL where the app
// answers once it runs.
type DeployReport struct {
	Phase  Phase  `json:"phase"`
	Reason string `json:"reason,omitempty"`
	Image  string `json:"image,omitempty"`
	URL    string `json:"url,omitempty"`
}

// AppOp is the body of a stop, start or restart the control plane forwards
// to a runner: Start needs the app's replicas, which a stopped app no longer
// shows.
type AppOp struct {
	Replicas int `json:"replicas"`
}

// AppStatus is a running app's state as its runner sees it. JVM is what
// the agent in its first ready instance says of the JVM (see
// AgentFactsPath), when it answered.
type AppStatus struct {
	App      string          `json:"app"`
	Image    string          `json:"image"`
	Replicas int             `json:"replicas"`
	Ready    int             `json:"ready"`
	URL      string          `json:"url"`
	JVM      json.RawMessage `json:"jvm,omitempty"`
}

// AgentFactsPath is where the agent serves the JVM's facts, on AgentPort.
const AgentFactsPath = "/cameleer/jvm"

// Runner local API paths for deployments and apps, as the control plane
// calls them through the tunnel.
const (
	RunnerDeploymentsPath = "/v1/deployments"
	// RunnerAppsPath is followed by ENV/apps[/APP[/OP]], or by ENV and
	// RunnerEgressPath.
	RunnerAppsPath = "/v1/environments/"
)

// Control plane paths a runner calls through its tunnel: DeployReportPath
// is followed by the deployment's ID, ArtifactPath by the artifact's
// SHA-256.
const (
	DeployReportPath = "/api/v1/runner/deployments/"
	ArtifactPath     = "/api/v1/runner/artifacts/"
)
