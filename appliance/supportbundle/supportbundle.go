// Package supportbundle collects what an engineer needs to see why a node
// misbehaves into one tar.gz: versions, the node's status, the components'
// logs, the config, the cluster's state and events, and the host's facts
// (kernel, cgroups, mounts, iptables, addresses, disk, memory, preflight).
// It works with the engine down or half up: what cannot be had is said in
// errors.txt and the rest is collected. What must not leave the host is
// kept out twice: only files named here are read (never keys, the PKI,
// kubeconfigs, originals or telemetry), and every text goes through
// Redact, which takes out private keys, bearer tokens, one-time tokens and
// the values of anything named like a password, secret or token.
package supportbundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/preflight"
	"github.com/cameleer/cameleer/version"
)

// logTail bounds what is taken of each log: its end, where the trouble is.
const logTail = 4 << 20

// commandTimeout bounds each command run: a half-up apiserver must not
// hold the bundle up.
const commandTimeout = 20 * time.Second

// Status asks the node for its status (node.QueryStatus, or the running
// node's own), an error when it does not answer.
type Status func(context.Context) (any, error)

// Write writes the bundle of the node in dataDir to w.
func Write(ctx context.Context, w io.Writer, dataDir string, status Status) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	b := &bundle{tw: tw, now: time.Now()}
	b.collect(ctx, dataDir, status)
	if len(b.errs) > 0 {
		b.add("errors.txt", []byte(strings.Join(b.errs, "\n")+"\n"))
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

type bundle struct {
	tw   *tar.Writer
	now  time.Time
	errs []string
	werr error
}

func (b *bundle) fail(what string, err error) {
	b.errs = append(b.errs, what+": "+Redact(err.Error()))
}

// add puts a file in the bundle, redacted.
func (b *bundle) add(name string, content []byte) {
	if b.werr != nil {
		return
	}
	content = []byte(Redact(string(content)))
	if err := b.tw.WriteHeader(&tar.Header{Name: "support-bundle/" + name, Mode: 0o600, Size: int64(len(content)),
		ModTime: b.now, Typeflag: tar.TypeReg}); err != nil {
		b.werr = err
		return
	}
	_, b.werr = b.tw.Write(content)
}

func (b *bundle) addJSON(name string, v any) {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		b.fail(name, err)
		return
	}
	b.add(name, append(out, '\n'))
}

// file adds the last max bytes of path (0: all of it).
func (b *bundle) file(name, path string, max int64) {
	f, err := os.Open(path)
	if err != nil {
		b.fail(name, err)
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && max > 0 && st.Size() > max {
		f.Seek(st.Size()-max, io.SeekStart)
	}
	content, err := io.ReadAll(f)
	if err != nil {
		b.fail(name, err)
		return
	}
	b.add(name, content)
}

// run adds what a command prints, and its failure, if any.
func (b *bundle) run(ctx context.Context, name string, env []string, argv ...string) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b.fail(strings.Join(argv, " "), err)
	}
	b.add(name, out.Bytes())
}

func (b *bundle) collect(ctx context.Context, dataDir string, status Status) {
	b.addJSON("version.json", map[string]string{"version": version.Version, "commit": version.Commit, "go": version.GoVersion()})
	c, err := config.Load(dataDir)
	if err != nil {
		// No node (or its config lost): the host's facts still help.
		b.fail("config", err)
		c = config.Config{DataDir: dataDir}
	} else {
		b.file("config.json", filepath.Join(dataDir, "config.json"), 0)
	}
	b.file("runner.json", filepath.Join(dataDir, "controlplane", "runner.json"), 0)

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := status(sctx)
	cancel()
	if err != nil {
		b.fail("status", err)
	} else {
		b.addJSON("status.json", st)
	}

	logs, _ := filepath.Glob(filepath.Join(dataDir, "logs", "*.log"))
	sort.Strings(logs)
	for _, l := range logs {
		b.file("logs/"+filepath.Base(l), l, logTail)
	}

	kubectl := c.Path("bin", "current", "bin", "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		b.fail("kubectl", fmt.Errorf("no engine extracted under %s", c.Path("bin", "current")))
	} else {
		env := []string{"KUBECONFIG=" + c.AdminKubeconfig()}
		for _, k := range [][]string{
			{"nodes.txt", "get", "nodes", "-o", "wide"},
			{"describe-nodes.txt", "describe", "nodes"},
			{"pods.txt", "get", "pods", "-A", "-o", "wide"},
			{"workloads.txt", "get", "deployments,daemonsets,statefulsets,services,ingresses,networkpolicies", "-A", "-o", "wide"},
			{"events.txt", "get", "events", "-A", "--sort-by=.lastTimestamp"},
			{"describe-kube-system.txt", "describe", "pods", "-n", "kube-system"},
		} {
			b.run(ctx, "kubectl/"+k[0], env, append([]string{kubectl, "--request-timeout=15s"}, k[1:]...)...)
		}
	}

	b.host(ctx, c)
}

// host adds the host's facts.
func (b *bundle) host(ctx context.Context, c config.Config) {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err == nil {
		b.add("host/uname.txt", []byte(fmt.Sprintf("%s %s %s %s\n", chars(u.Sysname[:]), chars(u.Release[:]), chars(u.Version[:]), chars(u.Machine[:]))))
	}
	for name, path := range map[string]string{"cmdline.txt": "/proc/cmdline", "meminfo.txt": "/proc/meminfo", "mounts.txt": "/proc/mounts",
		"cgroups.txt": "/proc/cgroups", "self-cgroup.txt": "/proc/self/cgroup", "loadavg.txt": "/proc/loadavg", "os-release.txt": "/etc/os-release"} {
		b.file("host/"+name, path, 0)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(existing(c.DataDir), &fs); err == nil {
		b.add("host/disk.txt", []byte(fmt.Sprintf("%s: %d MiB free of %d MiB, %d of %d inodes free\n", existing(c.DataDir),
			fs.Bavail*uint64(fs.Bsize)>>20, fs.Blocks*uint64(fs.Bsize)>>20, fs.Ffree, fs.Files)))
	}
	for _, cmd := range [][]string{{"iptables-save.txt", "iptables-save"}, {"ip6tables-save.txt", "ip6tables-save"},
		{"addresses.txt", "ip", "-d", "address"}, {"routes.txt", "ip", "route"}} {
		if _, err := exec.LookPath(cmd[1]); err != nil {
			b.fail(cmd[1], err)
			continue
		}
		b.run(ctx, "host/"+cmd[0], nil, cmd[1:]...)
	}
	var pre strings.Builder
	for _, r := range preflight.Run(preflight.Options{Config: c, SkipPorts: true}) {
		if r.Err != nil {
			fmt.Fprintf(&pre, "FAIL %s: %v\n", r.Name, r.Err)
		} else {
			fmt.Fprintf(&pre, "ok   %s\n", r.Name)
		}
	}
	b.add("host/preflight.txt", []byte(pre.String()))
}

// existing is dir, or the nearest parent of it that exists.
func existing(dir string) string {
	for dir != "/" && dir != "." {
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
		dir = filepath.Dir(dir)
	}
	return "/"
}

func chars[T int8 | uint8](a []T) string {
	var s strings.Builder
	for _, c := range a {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

// secretName matches a name that says its value is secret.
const secretName = `[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|credential|private[_-]?key|client-key-data)[A-Za-z0-9_.-]*`

var redactions = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----`), "[private key removed]"},
	{regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+`), "$1 [removed]"},
	// One-time and join tokens: the pin may stay, the secret goes.
	{regexp.MustCompile(`\b(cmlr1\.[0-9a-f]{64}\.)[A-Za-z0-9_-]+`), "${1}[removed]"},
	{regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+`), "[jwt removed]"},
	// name=value, name: value, "name": "value" where the name says secret.
	{regexp.MustCompile(`(?i)("?` + secretName + `"?\s*[:=]\s*)"[^"]*"`), `${1}"[removed]"`},
	{regexp.MustCompile(`(?i)("?` + secretName + `"?\s*[:=]\s*)('[^']*'|[^\s,;&"'}]+)`), "${1}[removed]"},
}

// Redact takes out of s what must not leave the host.
func Redact(s string) string {
	for _, r := range redactions {
		s = r.re.ReplaceAllString(s, r.with)
	}
	return s
}

// FileName is a bundle's name: the host's and the time's.
func FileName(now time.Time) string {
	host, _ := os.Hostname()
	return "cameleer-support-" + host + "-" + now.UTC().Format("20060102-150405") + ".tar.gz"
}
