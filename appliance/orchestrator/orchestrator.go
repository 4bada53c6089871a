// Package orchestrator runs tenants' apps on a runner, routed by Traefik at
// APP.ENV.TENANT.DOMAIN. Runtime is the contract (the RuntimeOrchestrator of
// the design); Kubernetes runs apps on the appliance's own cluster, and
// package docker below on a host that already runs a Docker Engine.
package orchestrator

import (
	"context"
	"io"
	"net/netip"

	"github.com/cameleer/cameleer/api"
)

// AgentPort is where the agent in every app serves the JVM's facts.
const AgentPort = api.AgentPort

// Labels both runtimes put on what they make (manifests/ spells them the
// same): LabelManagedBy is "cameleer" on all of it, which is how they find
// their own objects again.
const (
	LabelManagedBy   = "app.kubernetes.io/managed-by"
	LabelTenant      = "cameleer.io/tenant"
	LabelEnvironment = "cameleer.io/environment"
)

// Runtime deploys and operates apps. Every method names the app by its
// tenant, environment and name; Deploy and Start wait until the app is
// ready, or say why it is not.
type Runtime interface {
	// Deploy creates or updates the app's environment and the app, then
	// waits for its rollout.
	Deploy(ctx context.Context, a App) error
	// Stop takes the app down; what it is made of stays, so Start brings
	// it back as it was.
	Stop(ctx context.Context, a App) error
	// Start runs a stopped app again with a.Replicas instances.
	Start(ctx context.Context, a App) error
	// Restart replaces the app's instances and waits for the new ones.
	Restart(ctx context.Context, a App) error
	// Delete removes the app and all it is made of, and waits until its
	// instances are gone; an app that is not there is deleted already.
	Delete(ctx context.Context, a App) error
	// Logs writes the last tail lines of the app's output to w and, with
	// follow, what comes until ctx is done.
	Logs(ctx context.Context, a App, tail int, follow bool, w io.Writer) error
	// Status reads the app's state.
	Status(ctx context.Context, a App) (Status, error)
	// List names the apps of an environment, sorted.
	List(ctx context.Context, tenant, env string) ([]string, error)
	// Egress sets what the apps of an environment may reach outside it,
	// beyond DNS: the destinations of rules, nothing when there are none.
	Egress(ctx context.Context, tenant, env string, rules []EgressRule) error
	// Instances lists the running instances of all the tenant's apps.
	Instances(ctx context.Context, tenant string) ([]Instance, error)
}

// Instance is one running instance of an app: Name is the runtime's (a
// pod's or a container's), Address its IP address, which this host
// reaches (the agent's port among others).
type Instance struct {
	Environment string
	App         string
	Name        string
	Address     string
}

// EgressRule lets an environment's apps open connections to the addresses
// To on Ports over Protocol ("tcp" or "udp").
type EgressRule struct {
	To       []netip.Prefix
	Ports    []int
	Protocol string
}

// App is one app in one environment.
type App struct {
	Tenant      string
	Environment string
	Name        string
	// Image is an immutable reference (NAME@sha256:...) the runtime can
	// pull.
	Image    string
	Replicas int
	// Port is where the app listens for HTTP.
	Port int
	Env  map[string]string
	// Secrets reach the app as environment variables; their values appear
	// nowhere else (not in logs, not in object specs a user lists).
	Secrets map[string]string
}

// Status is an app's state.
type Status struct {
	App      string `json:"app"`
	Image    string `json:"image"`
	Replicas int    `json:"replicas"`
	Ready    int    `json:"ready"`
	// Addresses are the ready instances' IP addresses, which this host
	// reaches (the agent's port among others).
	Addresses []string `json:"addresses,omitempty"`
}

// Namespace of a tenant's environment.
func Namespace(tenant, env string) string { return "cameleer-" + tenant + "-" + env }

// Host an app is routed at under domain.
func Host(a App, domain string) string {
	return a.Name + "." + a.Environment + "." + a.Tenant + "." + domain
}
