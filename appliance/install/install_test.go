package install

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/engine"
	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/appliance/node"
	"github.com/cameleer/cameleer/internal/certs"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// The flags given are taken, the rest are the defaults; a second install
// without flags keeps what the first recorded, and one with a flag changes
// only that. Nothing is written: Install saves the config only once the
// host passed its checks.
func TestConfigure(t *testing.T) {
	dir := t.TempDir()
	c, err := configure(Options{DataDir: dir, NodeIP: "192.0.2.10", HTTPPort: 8080, AppsDomain: "apps.example"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := config.Default(dir)
	if err != nil {
		t.Fatal(err)
	}
	want.NodeIP, want.HTTPPort, want.AppsDomain = "192.0.2.10", 8080, "apps.example"
	if c != want {
		t.Errorf("first install:\n%+v\nwant\n%+v", c, want)
	}
	if _, err := os.Stat(c.ConfigFile()); !os.IsNotExist(err) {
		t.Errorf("configure wrote %s (%v)", c.ConfigFile(), err)
	}

	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	again, err := configure(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if again != c {
		t.Errorf("second install without flags:\n%+v\nwant what the first recorded\n%+v", again, c)
	}
	changed, err := configure(Options{DataDir: dir, HTTPSPort: 8443})
	if err != nil {
		t.Fatal(err)
	}
	want = c
	want.HTTPSPort = 8443
	if changed != want {
		t.Errorf("second install with --https-port:\n%+v\nwant\n%+v", changed, want)
	}
}

// What cannot make a node is refused before anything is checked or
// written, with what is wrong; so is a recorded config that cannot be
// read, rather than replaced by the defaults.
func TestConfigureRefuses(t *testing.T) {
	ip := "192.0.2.10"
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{DataDir: "var/lib/cameleer", NodeIP: ip}, `data dir "var/lib/cameleer" is not an absolute path`},
		{Options{NodeIP: "fd00::1"}, `node IP "fd00::1" is not an IPv4 address`},
		{Options{NodeIP: "node1"}, `node IP "node1" is not an IPv4 address`},
		{Options{NodeIP: ip, HTTPPort: 70000}, "http port 70000 is out of range"},
		{Options{NodeIP: ip, HTTPSPort: -1}, "https port -1 is out of range"},
		{Options{NodeIP: ip, HTTPPort: 443}, "http and https ports are both 443"},
	} {
		if tc.opts.DataDir == "" {
			tc.opts.DataDir = t.TempDir()
		}
		if _, err := configure(tc.opts); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.opts, err, tc.want)
		}
	}

	dir := t.TempDir()
	damaged := []byte(`{"dataDir": "/var/lib/cameleer", "httpPort": 80,`)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := configure(Options{DataDir: dir, NodeIP: ip}); err == nil || !strings.Contains(err.Error(), "load config "+filepath.Join(dir, "config.json")) {
		t.Errorf("a damaged config: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "config.json")); !bytes.Equal(b, damaged) {
		t.Errorf("the damaged config was changed to %q", b)
	}
}

func TestUnit(t *testing.T) {
	u := unit("/usr/local/bin/cameleer", config.Config{DataDir: "/srv/cameleer"})
	lines := strings.Split(u, "\n")
	for _, want := range []string{
		"ExecStart=/usr/local/bin/cameleer run --data-dir /srv/cameleer",
		// The container shims outlive a stop or restart of the node.
		"KillMode=process",
		// The engine's cgroups are its own to make.
		"Delegate=yes",
		"Restart=always",
		"WantedBy=multi-user.target",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("the unit has no line %q:\n%s", want, u)
		}
	}
}

// The proxy install was run with is in the unit's environment, and what
// run reads from the config.
func TestUnitCarriesTheProxy(t *testing.T) {
	c := config.Config{DataDir: "/srv/cameleer", NodeIP: "192.0.2.7", Proxy: config.Proxy{HTTPS: "http://proxy.corp:3128"}}
	lines := strings.Split(unit("/usr/local/bin/cameleer", c), "\n")
	for _, want := range []string{"Environment=HTTPS_PROXY=http://proxy.corp:3128", "Environment=https_proxy=http://proxy.corp:3128",
		"Environment=NO_PROXY=127.0.0.1,localhost,192.0.2.7,.svc,.cluster.local,cameleer.local"} {
		if !slices.Contains(lines, want) {
			t.Errorf("the unit has no line %q", want)
		}
	}
}

// install records the proxy of its environment and keeps a CA bundle: the
// system's CAs and the one given, which run's SSL_CERT_FILE names; a file
// with no certificate is refused.
func TestConfigureRecordsTheProxy(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewIssuer(t, "proxy-ca", nil)
	pemFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(pemFile, certs.CertPEM(ca.Cert), 0o644)
	opts := Options{DataDir: dir, NodeIP: "192.0.2.7", Proxy: config.Proxy{HTTPS: "http://proxy.corp:3128", No: "corp.example"}, CABundle: pemFile}
	c, err := configure(opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.Proxy != (config.Proxy{HTTPS: "http://proxy.corp:3128", No: "corp.example", CABundle: true}) {
		t.Errorf("recorded %+v", c.Proxy)
	}
	if err := caBundle(c, pemFile); err != nil {
		t.Fatal(err)
	}
	bundle, _ := os.ReadFile(c.CABundleFile())
	if !bytes.HasSuffix(bundle, certs.CertPEM(ca.Cert)) || len(bundle) <= len(certs.CertPEM(ca.Cert))+1 {
		t.Errorf("the CA bundle is not the system's and the given: %d bytes", len(bundle))
	}
	os.WriteFile(pemFile, []byte("not a certificate"), 0o644)
	if err := caBundle(c, pemFile); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("a file with no certificate: %v", err)
	}
	// Installed again without a proxy in the environment: it is kept.
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	again, err := configure(Options{DataDir: dir})
	if err != nil || again.Proxy != c.Proxy {
		t.Errorf("again: %+v %v", again.Proxy, err)
	}
}

// A data dir with a space, a quote or a % is one argument to systemd, as
// given.
func TestUnitQuotes(t *testing.T) {
	for dir, want := range map[string]string{
		"/srv/cameleer":       "/srv/cameleer",
		"/srv/my nodes/one":   `"/srv/my nodes/one"`,
		`/srv/it's "here"`:    `"/srv/it's \"here\""`,
		"/srv/100%/cameleer":  "/srv/100%%/cameleer",
		`/srv/back\slash dir`: `"/srv/back\\slash dir"`,
	} {
		u := unit("/usr/local/bin/cameleer", config.Config{DataDir: dir})
		if line := "ExecStart=/usr/local/bin/cameleer run --data-dir " + want; !slices.Contains(strings.Split(u, "\n"), line) {
			t.Errorf("data dir %q: the unit has no line %q:\n%s", dir, line, u)
		}
	}
}

// serveStatus answers the node's status queries on c's socket with the
// statuses in turn, the last one from then on.
func serveStatus(t *testing.T, c config.Config, statuses ...node.Status) {
	t.Helper()
	if err := os.MkdirAll(c.RunDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", c.StatusSocket())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/status" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		st := statuses[0]
		if len(statuses) > 1 {
			statuses = statuses[1:]
		}
		mu.Unlock()
		json.NewEncoder(w).Encode(st)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// Wait tells each component once, as it gets ready, then the node's
// condition, and ends when the whole node is Ready.
func TestWait(t *testing.T) {
	c := config.Config{DataDir: t.TempDir()}
	containerd := engine.ComponentStatus{Name: "containerd", Ready: true}
	kubelet := engine.ComponentStatus{Name: "kubelet", Message: "starting"}
	readyKubelet := engine.ComponentStatus{Name: "kubelet", Ready: true}
	nodeReady := &kube.Condition{Type: "Ready", Status: "True"}
	serveStatus(t, c,
		node.Status{Components: []engine.ComponentStatus{containerd, kubelet}},
		node.Status{Components: []engine.ComponentStatus{containerd, kubelet}},
		node.Status{Components: []engine.ComponentStatus{containerd, readyKubelet}, Node: nodeReady},
		node.Status{Components: []engine.ComponentStatus{containerd, readyKubelet}, Node: nodeReady, Ready: true},
	)
	var out bytes.Buffer
	if err := wait(context.Background(), &out, c, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{`containerd +ready`, `kubelet +ready`, `node condition +Ready`, `all components +ready`}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s\nwant one line each for %q", out.String(), want)
	}
	for i, w := range want {
		if !regexp.MustCompile(`^    ` + w + `  \(\d+\.\ds\)$`).MatchString(lines[i]) {
			t.Errorf("line %d: %q, want %q and the time", i, lines[i], w)
		}
	}
}

// A node that is not Ready in time is reported with what it waits for and
// where to look.
func TestWaitTimesOut(t *testing.T) {
	c := config.Config{DataDir: t.TempDir()}
	serveStatus(t, c, node.Status{Components: []engine.ComponentStatus{
		{Name: "containerd", Ready: true},
		{Name: "kubelet", Message: "exited with code 1"},
		{Name: "coredns"},
	}})
	var out bytes.Buffer
	err := wait(context.Background(), &out, c, 700*time.Millisecond)
	want := "the node is not Ready after 700ms: waiting for kubelet (exited with code 1), coredns (see `cameleer status` and " + c.LogDir() + ")"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}

	// Every component ready, the node's condition not yet.
	if got, want := pending(node.Status{Components: []engine.ComponentStatus{{Name: "kubelet", Ready: true}}}), "waiting for the node's Ready condition"; got != want {
		t.Errorf("pending: %q, want %q", got, want)
	}
}

// A refused join removes what it made and nothing that was there.
func TestFirstMissing(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if got := firstMissing(data, filepath.Join(data, "pki")); got != data {
		t.Errorf("no data dir: %q", got)
	}
	os.Mkdir(data, 0o700)
	if got := firstMissing(data, filepath.Join(data, "pki")); got != filepath.Join(data, "pki") {
		t.Errorf("a data dir without pki: %q", got)
	}
	os.Mkdir(filepath.Join(data, "pki"), 0o700)
	if got := firstMissing(data, filepath.Join(data, "pki")); got != "" {
		t.Errorf("both there: %q", got)
	}
}
