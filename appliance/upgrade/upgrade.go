// Package upgrade moves a running node to another cameleer binary, and
// back by itself if the node is not healthy on it in time. The binary is
// put where the running one is (its predecessor kept in the data dir as
// upgrade/cameleer.previous); `cameleer run` is stopped, which leaves the
// containers running (their shims outlive it), and started again from the
// new binary, which extracts its own payload beside the old one (bin/<sha>,
// bin/current and bin/previous); then the node must be healthy within the
// timeout: every component ready, the node Ready, and every app that ran
// before ready again. If it is not, the new run is stopped, the previous
// binary put back and started, and the node comes up on it and its
// payload, still there. What happened is in upgrade/last.json, which
// `cameleer status` (and the control plane, through the runner's status)
// shows.
package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/join"
	"github.com/cameleer/cameleer/appliance/node"
	"github.com/cameleer/cameleer/internal/atomicfile"
)

// Options are upgrade's flags.
type Options struct {
	DataDir string
	// Binary is the cameleer to move to.
	Binary string
	// Timeout bounds how long the node has to be healthy on it.
	Timeout time.Duration
	// Restart stops the node's `cameleer run` (pid) and starts it again
	// from exe; the default signals it and starts a detached one, or
	// restarts the systemd unit where systemd runs it.
	Restart func(ctx context.Context, c config.Config, pid int, exe string) error
}

// Outcome is an upgrade's record (node.Upgrade), in node.UpgradeFile.
type Outcome = node.Upgrade

// Results of an upgrade.
const (
	Upgraded   = "upgraded"
	RolledBack = "rolled back"
	Running    = "running"
)

func save(c config.Config, o Outcome) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(node.UpgradeFile(c)), 0o700); err != nil {
		return err
	}
	_, err = atomicfile.WriteFile(node.UpgradeFile(c), append(b, '\n'), 0o600)
	return err
}

// ErrRolledBack says the node was not healthy on the new binary and runs
// on the previous one again.
var ErrRolledBack = errors.New("rolled back")

// Upgrade runs the upgrade, printing progress to out.
func Upgrade(ctx context.Context, out io.Writer, opts Options) (Outcome, error) {
	step := func(format string, a ...any) { fmt.Fprintf(out, "==> "+format+"\n", a...) }
	if opts.Restart == nil {
		opts.Restart = restart
	}
	c, err := config.Load(opts.DataDir)
	if err != nil {
		return Outcome{}, err
	}
	pid := node.RunningPID(c)
	if pid == 0 {
		return Outcome{}, errors.New("the node is not running: an upgrade moves a running node (start it with `cameleer install`)")
	}
	// The running binary is its process's inode, whatever its path holds
	// now (an upgrade killed after the binary was put in place).
	running := fmt.Sprintf("/proc/%d/exe", pid)
	exe, err := os.Readlink(running)
	if err != nil {
		return Outcome{}, fmt.Errorf("find the running cameleer: %w", err)
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	from, err := node.BinaryVersion(ctx, running)
	if err != nil {
		return Outcome{}, err
	}
	to, err := node.BinaryVersion(ctx, opts.Binary)
	if err != nil {
		return Outcome{}, err
	}
	if !to.Engine {
		return Outcome{}, fmt.Errorf("%s carries no engine (build it with make)", opts.Binary)
	}
	// A cluster moves controller first: a worker goes to the version its
	// controller runs, never ahead of it.
	if c.IsWorker() {
		cv, err := join.ControllerVersion(ctx, c)
		if err != nil {
			return Outcome{}, err
		}
		if cv != to.Version {
			return Outcome{}, fmt.Errorf("%s is %s, its controller %s runs %s: upgrade the controller first, then its workers to its version", opts.Binary, to.Version, c.Server, cv)
		}
	}
	st, err := node.QueryStatus(ctx, c)
	if err != nil || !st.Ready {
		return Outcome{}, fmt.Errorf("the node is not healthy now (%s): an upgrade needs a healthy node to roll back to", unhealthy(st, err))
	}
	apps, err := runningApps(ctx, c)
	if err != nil {
		return Outcome{}, err
	}
	previous := c.Path("upgrade", "cameleer.previous")
	o := Outcome{From: from.Version, To: to.Version, Started: time.Now().UTC(), Result: Running}
	if last := node.LastUpgrade(c); last != nil && last.Result == Running {
		// One that did not finish: what it kept is what to go back to.
		if _, err := os.Stat(previous); err == nil {
			o.From = last.From
			step("Finishing the upgrade from %s that did not end", last.From)
		}
	}
	// A node never upgraded has no upgrade dir yet.
	if err := os.MkdirAll(filepath.Dir(previous), 0o700); err != nil {
		return o, err
	}
	if o.From == from.Version {
		if err := copyFile(running, previous); err != nil {
			return o, fmt.Errorf("keep the running binary: %w", err)
		}
	}
	if err := save(c, o); err != nil {
		return o, err
	}
	step("Upgrading %s from %s to %s; %d app(s) must run again: %s", c.NodeName, o.From, to.Version, len(apps), strings.Join(apps, ", "))

	if err := copyFile(opts.Binary, exe); err != nil {
		return o, fmt.Errorf("put %s in place of %s: %w", opts.Binary, exe, err)
	}
	step("Restarting the node on %s (the apps' containers run on)", to.Version)
	reason, err := restartAndWait(ctx, c, pid, exe, apps, opts)
	if err != nil {
		return o, err
	}
	if reason == "" {
		o.Result, o.Finished = Upgraded, time.Now().UTC()
		step("Upgraded to %s in %v", to.Version, o.Finished.Sub(o.Started).Round(time.Second))
		return o, save(c, o)
	}

	step("Not healthy on %s within %v (%s): rolling back to %s", to.Version, opts.Timeout, reason, o.From)
	if err := copyFile(previous, exe); err != nil {
		return o, fmt.Errorf("put the previous binary back: %w", err)
	}
	pid = node.RunningPID(c)
	back, err := restartAndWait(ctx, c, pid, exe, apps, opts)
	if err != nil {
		return o, err
	}
	o.Result, o.Reason, o.Finished = RolledBack, reason, time.Now().UTC()
	if back != "" {
		o.Reason += "; and on " + o.From + " again: " + back
	}
	if err := save(c, o); err != nil {
		return o, err
	}
	step("Rolled back to %s in %v", o.From, o.Finished.Sub(o.Started).Round(time.Second))
	return o, fmt.Errorf("%w to %s: %s", ErrRolledBack, o.From, o.Reason)
}

// restartAndWait restarts the node from exe and waits for it to be
// healthy; the reason it is not, when it is not in time.
func restartAndWait(ctx context.Context, c config.Config, pid int, exe string, apps []string, opts Options) (string, error) {
	if err := opts.Restart(ctx, c, pid, exe); err != nil {
		return "", err
	}
	deadline := time.Now().Add(opts.Timeout)
	reason := "it did not start"
	for {
		if newPID := node.RunningPID(c); newPID != 0 && newPID != pid {
			st, err := node.QueryStatus(ctx, c)
			reason = unhealthy(st, err)
			if reason == "" {
				missing, err := missingApps(ctx, c, apps)
				if err != nil {
					reason = "its apps cannot be listed: " + err.Error()
				} else if len(missing) > 0 {
					reason = "apps not running again: " + strings.Join(missing, ", ")
				} else {
					return "", nil
				}
			}
		}
		if time.Now().After(deadline) {
			return reason, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// unhealthy says what keeps a status from healthy ("" when it is).
func unhealthy(st node.Status, err error) string {
	if err != nil {
		return "no status: " + err.Error()
	}
	var why []string
	for _, cs := range st.Components {
		if !cs.Ready {
			w := cs.Name + " " + cs.State
			if cs.Message != "" {
				w += " (" + cs.Message + ")"
			}
			why = append(why, w)
		}
	}
	if st.Node == nil || st.Node.Status != "True" {
		why = append(why, "node not Ready")
	}
	return strings.Join(why, ", ")
}

// runningApps lists the apps' Deployments with replicas ready, as
// NAMESPACE/NAME.
func runningApps(ctx context.Context, c config.Config) ([]string, error) {
	ready, err := appReplicas(ctx, c)
	if err != nil {
		return nil, err
	}
	var out []string
	for app, n := range ready {
		if n > 0 {
			out = append(out, app)
		}
	}
	slices.Sort(out)
	return out, nil
}

func missingApps(ctx context.Context, c config.Config, apps []string) ([]string, error) {
	ready, err := appReplicas(ctx, c)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, a := range apps {
		if ready[a] == 0 {
			missing = append(missing, a)
		}
	}
	return missing, nil
}

func appReplicas(ctx context.Context, c config.Config) (map[string]int, error) {
	// A worker's apps are its cluster's, which its controller watches: a
	// worker is healthy with its components and its node Ready.
	if c.IsWorker() {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Path("bin", "current", "bin", "kubectl"), "--request-timeout=15s", "get", "deployments", "-A",
		"-l", "app.kubernetes.io/managed-by=cameleer", "-o", "json")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.AdminKubeconfig())
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("list the apps: %w", err)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Namespace, Name string }
			Status   struct{ ReadyReplicas int }
		}
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, err
	}
	ready := map[string]int{}
	for _, d := range list.Items {
		ready[d.Metadata.Namespace+"/"+d.Metadata.Name] = d.Status.ReadyReplicas
	}
	return ready, nil
}

// copyFile copies src over dst by a rename: a running dst keeps its inode.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// restart stops the node's run and starts it from exe: the systemd unit
// where systemd runs it, else a detached `exe run`.
func restart(ctx context.Context, c config.Config, pid int, exe string) error {
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		if out, err := exec.CommandContext(ctx, "systemctl", "restart", "cameleer.service").CombinedOutput(); err == nil {
			return nil
		} else if !strings.Contains(string(out), "not found") {
			return fmt.Errorf("systemctl restart cameleer: %w: %s", err, strings.TrimSpace(string(out)))
		}
	}
	if pid != 0 {
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; syscall.Kill(pid, 0) == nil; i++ {
			if i == 90 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	_, err := node.StartDetached(c, exe)
	return err
}

// Line says an upgrade's record in one line, as `cameleer status` shows it.
func Line(o Outcome) string {
	s := fmt.Sprintf("%s -> %s: %s", o.From, o.To, o.Result)
	if !o.Finished.IsZero() {
		s += " at " + o.Finished.Format(time.RFC3339)
	} else {
		s += " since " + o.Started.Format(time.RFC3339)
	}
	if o.Reason != "" {
		s += " (" + o.Reason + ")"
	}
	return s
}
