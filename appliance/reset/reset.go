// Package reset removes a node from the host and leaves nothing behind:
// processes (the supervisor, the engine, container shims and containers),
// mounts under the data dir, the iptables chains and ipsets the engine made,
// its network links, its cgroups, the systemd unit and the data dir.
package reset

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/join"
	"github.com/cameleer/cameleer/appliance/node"
)

// Links the engine creates on the host.
var Links = []string{"cni0", "flannel.1"}

// ChainPrefixes name the iptables chains the engine's components create:
// kube-proxy and kube-router (KUBE-), the CNI plugins (CNI-), flannel.
var ChainPrefixes = []string{"KUBE-", "CNI-", "FLANNEL"}

// Reset removes the node of dataDir. It goes on past errors, so one stuck
// piece does not leave the rest behind, and reports them all.
func Reset(ctx context.Context, log *slog.Logger, dataDir string) error {
	if !filepath.IsAbs(dataDir) || filepath.Clean(dataDir) == "/" {
		return fmt.Errorf("data dir %q must be an absolute path below /", dataDir)
	}
	dataDir = filepath.Clean(dataDir)
	c := config.Config{DataDir: dataDir}
	var errs []error
	step := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			log.Warn(what, "err", err)
		}
	}
	// A worker leaves its cluster: drained while its kubelet still stops
	// its pods, removed once that kubelet is gone (a running one would
	// register the node again). A controller that cannot be reached does
	// not keep the host from being cleaned: said, not failed.
	joined, err := config.Load(dataDir)
	worker := err == nil && joined.IsWorker()
	if worker {
		if err := join.Drain(ctx, joined); err != nil {
			log.Warn("the controller did not drain this node", "controller", joined.Server, "err", err)
		}
	}
	step("stop systemd unit", removeUnit(ctx))
	step("stop cameleer run", stopRun(c))
	step("kill engine processes", killAll(dataDir))
	if worker {
		if err := join.Leave(ctx, joined); err != nil {
			log.Warn("the controller did not remove this node: run `cameleer kubectl delete node "+joined.NodeName+"` there", "controller", joined.Server, "err", err)
		}
	}
	step("unmount", unmountUnder(dataDir))
	step("delete iptables chains", flushChains(ctx))
	step("destroy ipsets", destroySets(ctx))
	step("delete links", deleteLinks(ctx))
	step("remove cgroups", removeCgroups())
	step("remove data dir", os.RemoveAll(dataDir))
	return errors.Join(errs...)
}

func removeUnit(ctx context.Context) error {
	const unit = "/etc/systemd/system/cameleer.service"
	if _, err := os.Stat(unit); err != nil {
		return nil
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		_ = exec.CommandContext(ctx, "systemctl", "disable", "--now", "cameleer.service").Run()
	}
	if err := os.Remove(unit); err != nil {
		return err
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		return exec.CommandContext(ctx, "systemctl", "daemon-reload").Run()
	}
	return nil
}

// stopRun asks `cameleer run` to stop its components, and kills it if it
// takes too long.
func stopRun(c config.Config) error {
	pid := node.RunningPID(c)
	if pid == 0 {
		return nil
	}
	_ = unix.Kill(pid, unix.SIGTERM)
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		if unix.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return unix.Kill(pid, unix.SIGKILL)
}

// killAll SIGKILLs, until none is left, every process that belongs to the
// node: the engine's (marked by the supervisor, or running a payload
// binary), the container shims, and every process in a pod's cgroup.
func killAll(dataDir string) error {
	for range 50 {
		pids, err := nodeProcesses(dataDir)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pids, _ := nodeProcesses(dataDir)
	return fmt.Errorf("processes %v survive SIGKILL", pids)
}

// nodeProcesses lists the pids that belong to the node of dataDir.
func nodeProcesses(dataDir string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	binDir := filepath.Join(dataDir, "bin") + "/"
	// The supervisor marks its children NAME@RUNDIR.
	marker := []byte("@" + filepath.Join(dataDir, "run") + "\x00")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == 1 {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && strings.HasPrefix(exe, binDir) {
			pids = append(pids, pid)
			continue
		}
		if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil && bytes.Contains(env, marker) {
			pids = append(pids, pid)
			continue
		}
		if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil && bytes.Contains(cg, []byte("/kubepods")) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Mounts lists the mount points at or below dir, deepest first.
func Mounts(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescape(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	// Longest first, so children go before their parents.
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out), sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unmountUnder(dir string) error {
	for range 10 {
		mps, err := Mounts(dir)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			if err := unix.Unmount(mp, 0); err != nil {
				_ = unix.Unmount(mp, unix.MNT_DETACH)
			}
		}
	}
	mps, _ := Mounts(dir)
	return fmt.Errorf("still mounted: %v", mps)
}

// flushChains removes every chain named by ChainPrefixes, and every rule
// that jumps to one, from every table, with iptables-save and restore.
func flushChains(ctx context.Context) error {
	var errs []error
	for _, family := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(family + "-save"); err != nil {
			continue
		}
		out, err := exec.CommandContext(ctx, family+"-save").Output()
		if err != nil {
			if family == "ip6tables" {
				continue // no IPv6 netfilter on this host
			}
			errs = append(errs, fmt.Errorf("%s-save: %w", family, err))
			continue
		}
		cleaned, changed := WithoutChains(out)
		if !changed {
			continue
		}
		cmd := exec.CommandContext(ctx, family+"-restore")
		cmd.Stdin = bytes.NewReader(cleaned)
		if b, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("%s-restore: %w: %s", family, err, strings.TrimSpace(string(b))))
		}
	}
	return errors.Join(errs...)
}

// WithoutChains drops from iptables-save output the engine's chains and the
// rules that mention them; it reports whether anything was dropped.
func WithoutChains(save []byte) ([]byte, bool) {
	var out bytes.Buffer
	changed := false
	sc := bufio.NewScanner(bytes.NewReader(save))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if engineLine(line) {
			changed = true
			continue
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes(), changed
}

func engineLine(line string) bool {
	if !strings.HasPrefix(line, ":") && !strings.HasPrefix(line, "-A ") {
		return false
	}
	for _, f := range strings.Fields(strings.TrimPrefix(line, ":")) {
		f = strings.TrimLeft(f, `"`)
		for _, p := range ChainPrefixes {
			if strings.HasPrefix(f, p) {
				return true
			}
		}
	}
	// Flannel's masquerade rules name the pod network only in a comment.
	return strings.Contains(line, "flanneld masq")
}

// destroySets removes the ipsets kube-router's network policy made.
func destroySets(ctx context.Context) error {
	if _, err := exec.LookPath("ipset"); err != nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, "ipset", "list", "-n").Output()
	if err != nil {
		return fmt.Errorf("ipset list: %w", err)
	}
	var errs []error
	for _, name := range strings.Fields(string(out)) {
		if !IsEngineSet(name) {
			continue
		}
		if b, err := exec.CommandContext(ctx, "ipset", "destroy", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ipset destroy %s: %w: %s", name, err, strings.TrimSpace(string(b))))
		}
	}
	return errors.Join(errs...)
}

// IsEngineSet tells whether an ipset is kube-router's.
func IsEngineSet(name string) bool {
	return strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "kube-router-")
}

func deleteLinks(ctx context.Context) error {
	var errs []error
	for _, l := range Links {
		if _, err := os.Stat("/sys/class/net/" + l); err != nil {
			continue
		}
		if b, err := exec.CommandContext(ctx, "ip", "link", "delete", l).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link delete %s: %w: %s", l, err, strings.TrimSpace(string(b))))
		}
	}
	return errors.Join(errs...)
}

// removeCgroups removes the kubepods hierarchy the kubelet made, in every
// cgroup v1 controller or in the v2 tree, deepest first.
func removeCgroups() error {
	roots, err := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if err != nil {
		return err
	}
	if _, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil {
		roots = append(roots, "/sys/fs/cgroup/kubepods")
	}
	var errs []error
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
