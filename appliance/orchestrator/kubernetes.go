package orchestrator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/manifests"
)

// Kubernetes runs apps on the node's cluster, through the payload's kubectl
// as cluster admin.
type Kubernetes struct {
	Kubectl kube.Kubectl
	// API, when set, answers the reads made every few seconds (the
	// instances' listing) over HTTP: a kubectl process costs seconds on
	// a busy node, and an app's first exchanges wait in its agent until
	// the runner has listed it. Nil: kubectl answers them too.
	API    *kube.Client
	NodeIP string
	// AppsDomain is the DNS suffix apps are routed under.
	AppsDomain string
	// ClusterCIDR is the pods' network, which egress rules never open.
	ClusterCIDR string
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

// egressPolicy is the NetworkPolicy that opens an environment's egress
// rules, beside the allow-egress of environment.yaml.
const egressPolicy = "allow-egress-rules"

// Egress applies an environment's egress rules as a NetworkPolicy of its
// namespace, or removes that policy when there are none.
func (k *Kubernetes) Egress(ctx context.Context, tenant, env string, rules []EgressRule) error {
	if err := k.EnsureEnvironment(ctx, tenant, env); err != nil {
		return err
	}
	ns := Namespace(tenant, env)
	doc, err := k.egressPolicy(ns, rules)
	if err != nil {
		return err
	}
	if doc == nil {
		_, err = k.Kubectl.Run(ctx, nil, "delete", "networkpolicy", egressPolicy, "-n", ns, "--ignore-not-found")
		return err
	}
	return k.Kubectl.Apply(ctx, doc)
}

type ipBlock struct {
	CIDR   string
	Except []string
}

type egressEntry struct {
	Blocks   []ipBlock
	Ports    []int
	Protocol string
}

// egressPolicy renders the policy for rules; nil when it opens nothing. A
// rule with no addresses is left out: an egress entry without any would
// open everything.
func (k *Kubernetes) egressPolicy(ns string, rules []EgressRule) ([]byte, error) {
	pods, _ := netip.ParsePrefix(k.ClusterCIDR) // not valid: nothing to leave out
	var entries []egressEntry
	for _, r := range rules {
		e := egressEntry{Blocks: ipBlocks(r.To, pods), Ports: r.Ports, Protocol: strings.ToUpper(r.Protocol)}
		if len(e.Blocks) > 0 && len(e.Ports) > 0 {
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		return nil, nil
	}
	return manifests.RenderWith("egress.yaml", map[string]any{"Namespace": ns, "Rules": entries})
}

// ipBlocks are the blocks that open to, less the pods' network: egress
// never opens other environments' pods (whose own policies keep them
// fenced besides). A destination within it is dropped; one around it has it
// as an exception.
func ipBlocks(to []netip.Prefix, pods netip.Prefix) []ipBlock {
	var out []ipBlock
	for _, p := range to {
		b := ipBlock{CIDR: p.String()}
		if pods.IsValid() && p.Overlaps(pods) {
			if p.Bits() >= pods.Bits() {
				continue
			}
			b.Except = []string{pods.String()}
		}
		out = append(out, b)
	}
	return out
}

type envVar struct{ Name, Value string }

// Deploy applies an app and waits for its rollout; a rollout that fails
// says why, and an app that ran before is rolled back to that version.
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
	ns, name := Namespace(a.Tenant, a.Environment), "deployment/"+a.Name
	before, _ := k.revision(ctx, a) // 0: the app is new
	if err := k.Kubectl.Apply(ctx, doc); err != nil {
		return err
	}
	err = k.rollout(ctx, a)
	if err == nil || before == 0 {
		return err
	}
	// A new pod template made a new revision; the one before kept serving
	// during the rollout and stays what the app is made of. (An apply that
	// changed only the replicas made none: there is nothing to undo.)
	if after, rerr := k.revision(ctx, a); rerr != nil || after == before {
		return err
	}
	if _, uerr := k.Kubectl.Run(ctx, nil, "rollout", "undo", "-n", ns, name, "--to-revision="+strconv.Itoa(before)); uerr != nil {
		return fmt.Errorf("%w (and rolling back failed: %v)", err, uerr)
	}
	return fmt.Errorf("%w; rolled back to the version before", err)
}

// deploymentState is what rollout and revision read of an app's Deployment.
type deploymentState struct {
	Metadata struct {
		Generation  int64
		Annotations map[string]string
	}
	Status struct{ ObservedGeneration int64 }
}

func (k *Kubernetes) deployment(ctx context.Context, a App) (deploymentState, error) {
	var d deploymentState
	err := k.getJSON(ctx, &d, "get", "-n", Namespace(a.Tenant, a.Environment), "deployment/"+a.Name)
	return d, err
}

// revision is the app's Deployment's current revision.
func (k *Kubernetes) revision(ctx context.Context, a App) (int, error) {
	d, err := k.deployment(ctx, a)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(d.Metadata.Annotations["deployment.kubernetes.io/revision"])
}

func sorted(m map[string]string) []envVar {
	var out []envVar
	for n, v := range m {
		out = append(out, envVar{n, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// rolloutTimeout bounds how long a rollout may take to become ready.
const rolloutTimeout = 3 * time.Minute

// rollout waits until the app's newest pods are all ready. A pod of them
// that cannot run (its container exits, its image cannot be pulled, its
// config is wrong) fails the rollout at once with why and the container's
// last output, rather than after the timeout.
func (k *Kubernetes) rollout(ctx context.Context, a App) error {
	ctx, cancel := context.WithTimeout(ctx, rolloutTimeout)
	defer cancel()
	ns, name := Namespace(a.Tenant, a.Environment), "deployment/"+a.Name
	for {
		out, err := k.Kubectl.Run(ctx, nil, "rollout", "status", "-n", ns, name, "--watch=false")
		if err == nil && strings.Contains(string(out), "successfully rolled out") {
			return nil
		}
		if trouble := k.podTrouble(ctx, a); trouble != "" {
			return fmt.Errorf("rollout of %s: %s", a.Name, trouble)
		}
		select {
		case <-ctx.Done():
			last := strings.TrimSpace(string(out))
			if err != nil {
				last = err.Error()
			}
			return fmt.Errorf("rollout of %s: not ready after %v: %s", a.Name, rolloutTimeout, last)
		case <-time.After(time.Second):
		}
	}
}

// podList is what podTrouble reads of the app's pods and replica sets.
type podList struct {
	Items []struct {
		Metadata struct {
			Name        string
			Labels      map[string]string
			Annotations map[string]string
		}
		Status struct {
			ContainerStatuses []struct {
				Name         string
				RestartCount int
				State        containerState
				LastState    containerState
			}
		}
	}
}

type containerState struct {
	Waiting *struct {
		Reason, Message string
	}
	Terminated *struct {
		ExitCode int
		Reason   string
	}
}

// Waiting reasons that do not go away by waiting.
var stuck = []string{"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}

// isStuck tells whether a container waits for what waiting will not bring.
// A kubelet that could not read the app's secret yet ("failed to sync
// secret cache": the node may read a secret only once a pod of it that
// uses it is bound there, which the apiserver learns moments later, more
// on a loaded host) tries again by itself.
func isStuck(reason, message string) bool {
	return slices.Contains(stuck, reason) && !strings.Contains(message, "failed to sync")
}

// podTrouble says what keeps a pod of the app's current revision from
// running, or "". Until the Deployment controller has seen the latest
// change, the current revision is not known yet: nothing is judged.
func (k *Kubernetes) podTrouble(ctx context.Context, a App) string {
	ns, sel := Namespace(a.Tenant, a.Environment), "app.kubernetes.io/name="+a.Name
	dep, err := k.deployment(ctx, a)
	if err != nil || dep.Status.ObservedGeneration < dep.Metadata.Generation {
		return ""
	}
	revision := dep.Metadata.Annotations["deployment.kubernetes.io/revision"]
	var sets podList
	if err := k.getJSON(ctx, &sets, "get", "replicasets", "-n", ns, "-l", sel); err != nil {
		return ""
	}
	hash := ""
	for _, rs := range sets.Items {
		if rs.Metadata.Annotations["deployment.kubernetes.io/revision"] == revision {
			hash = rs.Metadata.Labels["pod-template-hash"]
		}
	}
	if hash == "" {
		return ""
	}
	var pods podList
	if err := k.getJSON(ctx, &pods, "get", "pods", "-n", ns, "-l", sel+",pod-template-hash="+hash); err != nil {
		return ""
	}
	for _, p := range pods.Items {
		for _, c := range p.Status.ContainerStatuses {
			w := c.State.Waiting
			if w == nil || !isStuck(w.Reason, w.Message) {
				continue
			}
			why := w.Reason
			if t := c.LastState.Terminated; t != nil {
				why = fmt.Sprintf("exited with code %d (%s), restarted %d times", t.ExitCode, t.Reason, c.RestartCount)
			} else if w.Message != "" {
				why += ": " + w.Message
			}
			msg := fmt.Sprintf("pod %s: %s", p.Metadata.Name, why)
			if logs, err := k.Kubectl.Run(ctx, nil, "logs", "-n", ns, p.Metadata.Name, "-c", c.Name, "--previous", "--tail=10"); err == nil && len(bytes.TrimSpace(logs)) > 0 {
				msg += "; its last output: " + strings.Join(strings.Split(strings.TrimSpace(string(logs)), "\n"), " | ")
			}
			return msg
		}
	}
	return ""
}

// read decodes the list at path of the apiserver into v, or, without
// API, what kubectl answers to args.
func (k *Kubernetes) read(ctx context.Context, v any, path string, args ...string) error {
	if k.API != nil {
		return k.API.Get(ctx, path, v)
	}
	return k.getJSON(ctx, v, args...)
}

func (k *Kubernetes) getJSON(ctx context.Context, v any, args ...string) error {
	out, err := k.Kubectl.Run(ctx, nil, append(args, "-o", "json")...)
	if err != nil {
		return err
	}
	return json.Unmarshal(out, v)
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

// Delete removes the app's objects (manifests/app.yaml) and waits until
// its pods are gone.
func (k *Kubernetes) Delete(ctx context.Context, a App) error {
	_, err := k.Kubectl.Run(ctx, nil, "delete", "-n", Namespace(a.Tenant, a.Environment), "--ignore-not-found", "--cascade=foreground", "--wait",
		"ingress/"+a.Name, "service/"+a.Name, "deployment/"+a.Name, "secret/"+a.Name+"-secrets")
	if err != nil {
		return fmt.Errorf("delete %s: %w", a.Name, err)
	}
	return nil
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
	var pods struct {
		Items []struct {
			Status struct {
				PodIP      string
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := k.getJSON(ctx, &pods, "get", "pods", "-n", Namespace(a.Tenant, a.Environment), "-l", "app.kubernetes.io/name="+a.Name); err != nil {
		return Status{}, err
	}
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" && p.Status.PodIP != "" {
				st.Addresses = append(st.Addresses, p.Status.PodIP)
			}
		}
	}
	return st, nil
}

// Instances lists the running pods of the tenant's apps, in the
// namespaces of its environments.
func (k *Kubernetes) Instances(ctx context.Context, tenant string) ([]Instance, error) {
	type meta struct {
		Name      string
		Namespace string
		Labels    map[string]string
	}
	var nss struct{ Items []struct{ Metadata meta } }
	sel := LabelTenant + "=" + tenant
	if err := k.read(ctx, &nss, "/api/v1/namespaces?labelSelector="+url.QueryEscape(sel), "get", "namespaces", "-l", sel); err != nil {
		return nil, fmt.Errorf("list the environments of %s: %w", tenant, err)
	}
	envs := map[string]string{}
	for _, ns := range nss.Items {
		envs[ns.Metadata.Name] = ns.Metadata.Labels[LabelEnvironment]
	}
	var pods struct {
		Items []struct {
			Metadata meta
			Status   struct{ Phase, PodIP string }
		}
	}
	if err := k.read(ctx, &pods, "/api/v1/pods?labelSelector="+url.QueryEscape("app.kubernetes.io/name"), "get", "pods", "--all-namespaces", "-l", "app.kubernetes.io/name"); err != nil {
		return nil, fmt.Errorf("list the pods of %s: %w", tenant, err)
	}
	var out []Instance
	for _, p := range pods.Items {
		env, ok := envs[p.Metadata.Namespace]
		if !ok || p.Status.Phase != "Running" || p.Status.PodIP == "" {
			continue
		}
		out = append(out, Instance{Environment: env, App: p.Metadata.Labels["app.kubernetes.io/name"], Name: p.Metadata.Name, Address: p.Status.PodIP})
	}
	return out, nil
}

// List names the apps of an environment.
func (k *Kubernetes) List(ctx context.Context, tenant, env string) ([]string, error) {
	out, err := k.Kubectl.Run(ctx, nil, "get", "deployments", "-n", Namespace(tenant, env),
		"-l", LabelManagedBy+"=cameleer", "-o", "jsonpath={.items[*].metadata.name}")
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
