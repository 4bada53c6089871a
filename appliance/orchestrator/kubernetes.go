package orchestrator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/manifests"
)

// Kubernetes runs apps on the node's cluster, through the payload's kubectl
// as cluster admin.
type Kubernetes struct {
	Kubectl kube.Kubectl
	NodeIP  string
	// AppsDomain is the DNS suffix apps are routed under.
	AppsDomain string
}

var _ Runtime = (*Kubernetes)(nil)

// Host an app is routed at.
func (k *Kubernetes) Host(a App) string { return Host(a, k.AppsDomain) }

// EnsureEnvironment creates or updates an environment's namespace, network
// policies and quotas (server-side apply: idempotent).
func (k *Kubernetes) EnsureEnvironment(ctx context.Context, tenant, env string) error {
	doc, err := manifests.RenderWith("environment.yaml", map[string]any{
		"Namespace": Namespace(tenant, env), "Tenant": tenant, "Environment": env,
		"NodeIP": k.NodeIP, "AgentPort": AgentPort,
	})
	if err != nil {
		return err
	}
	return k.Kubectl.Apply(ctx, doc)
}

type envVar struct{ Name, Value string }

// Deploy applies an app and waits for its rollout; a rollout that fails
// says why.
func (k *Kubernetes) Deploy(ctx context.Context, a App) error {
	if a.Replicas == 0 {
		a.Replicas = 1
	}
	if err := k.EnsureEnvironment(ctx, a.Tenant, a.Environment); err != nil {
		return err
	}
	env, secrets := sorted(a.Env), sorted(a.Secrets)
	h := sha256.New()
	for _, s := range secrets {
		fmt.Fprintf(h, "%s=%s\x00", s.Name, s.Value)
	}
	doc, err := manifests.RenderWith("app.yaml", map[string]any{
		"Namespace": Namespace(a.Tenant, a.Environment), "App": a.Name, "Image": a.Image,
		"Replicas": a.Replicas, "Port": a.Port, "AgentPort": AgentPort, "Env": env, "Host": k.Host(a),
		"Secrets": secrets, "SecretsDigest": hex.EncodeToString(h.Sum(nil))[:16],
	})
	if err != nil {
		return err
	}
	if err := k.Kubectl.Apply(ctx, doc); err != nil {
		return err
	}
	return k.rollout(ctx, a)
}

func sorted(m map[string]string) []envVar {
	var out []envVar
	for n, v := range m {
		out = append(out, envVar{n, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (k *Kubernetes) rollout(ctx context.Context, a App) error {
	_, err := k.Kubectl.Run(ctx, nil, "rollout", "status", "-n", Namespace(a.Tenant, a.Environment), "deployment/"+a.Name, "--timeout=180s")
	if err != nil {
		return fmt.Errorf("rollout of %s: %w", a.Name, err)
	}
	return nil
}

// Stop scales an app to zero; its objects stay.
func (k *Kubernetes) Stop(ctx context.Context, a App) error { return k.scale(ctx, a, 0) }

// Start scales an app back to its replicas and waits for it.
func (k *Kubernetes) Start(ctx context.Context, a App) error {
	if a.Replicas == 0 {
		a.Replicas = 1
	}
	if err := k.scale(ctx, a, a.Replicas); err != nil {
		return err
	}
	return k.rollout(ctx, a)
}

func (k *Kubernetes) scale(ctx context.Context, a App, n int) error {
	_, err := k.Kubectl.Run(ctx, nil, "scale", "-n", Namespace(a.Tenant, a.Environment), "deployment/"+a.Name, "--replicas="+strconv.Itoa(n))
	return err
}

// Restart replaces the app's pods one by one and waits.
func (k *Kubernetes) Restart(ctx context.Context, a App) error {
	if _, err := k.Kubectl.Run(ctx, nil, "rollout", "restart", "-n", Namespace(a.Tenant, a.Environment), "deployment/"+a.Name); err != nil {
		return err
	}
	return k.rollout(ctx, a)
}

// Status reads an app's deployment.
func (k *Kubernetes) Status(ctx context.Context, a App) (Status, error) {
	out, err := k.Kubectl.Run(ctx, nil, "get", "-n", Namespace(a.Tenant, a.Environment), "deployment/"+a.Name,
		"-o", `jsonpath={.spec.replicas} {.status.readyReplicas} {.spec.template.spec.containers[0].image}`)
	if err != nil {
		return Status{}, err
	}
	f := strings.Fields(string(out))
	st := Status{App: a.Name}
	if len(f) == 3 {
		st.Replicas, _ = strconv.Atoi(f[0])
		st.Ready, _ = strconv.Atoi(f[1])
		st.Image = f[2]
	} else if len(f) == 2 { // no ready replicas: the field is absent
		st.Replicas, _ = strconv.Atoi(f[0])
		st.Image = f[1]
	}
	return st, nil
}

// List names the apps of an environment.
func (k *Kubernetes) List(ctx context.Context, tenant, env string) ([]string, error) {
	out, err := k.Kubectl.Run(ctx, nil, "get", "deployments", "-n", Namespace(tenant, env),
		"-l", "app.kubernetes.io/managed-by=cameleer", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		return nil, err
	}
	names := strings.Fields(string(out))
	sort.Strings(names)
	return names, nil
}

// Logs writes the app's logs to w: the last tail lines, then, with
// follow, what comes until ctx is done.
func (k *Kubernetes) Logs(ctx context.Context, a App, tail int, follow bool, w io.Writer) error {
	args := []string{"logs", "-n", Namespace(a.Tenant, a.Environment), "deployment/" + a.Name, "--tail=" + strconv.Itoa(tail)}
	if follow {
		args = append(args, "--follow")
	}
	cmd := k.Kubectl.Command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of %s: %w: %s", a.Name, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
