//go:build payload

package payload_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/appliance/imagebuild"
	"github.com/cameleer/cameleer/appliance/images"
	"github.com/cameleer/cameleer/appliance/payload"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// An app JAR built here with javac becomes an image on the payload's Java
// runtime with the payload's agent, and runs: the agent says it attached,
// the app runs, and the image's environment reaches it.
func TestAppImageRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chroot into the image")
	}
	dir, m := extract(t)
	var jre, agent string
	for _, part := range m.Parts {
		switch {
		case part.Name == "jre" && part.Kind == payload.KindImage:
			jre = filepath.Join(dir, part.Files[0])
		case part.Name == "cameleer-agent":
			agent = filepath.Join(dir, part.Files[0])
		}
	}
	if jre == "" || agent == "" {
		t.Fatalf("payload lacks the jre image or the agent: %q %q", jre, agent)
	}
	base, _, err := images.OpenArchive(jre)
	if err != nil {
		t.Fatal(err)
	}
	agentJar, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}

	app := testutil.JavaJar(t, "Hello", `public class Hello {
    public static void main(String[] args) {
        System.out.println("hello from the app, GREETING=" + System.getenv("GREETING") + ", user " + System.getProperty("user.name"));
    }
}
`)

	res, err := imagebuild.Image(imagebuild.Input{Base: base, Agent: agentJar, App: app, Env: []string{"GREETING=bonjour"}})
	if err != nil {
		t.Fatal(err)
	}
	again, err := imagebuild.Image(imagebuild.Input{Base: base, Agent: agentJar, App: app, Env: []string{"GREETING=bonjour"}})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := res.Image.Digest()
	d2, _ := again.Image.Digest()
	if d1 != d2 {
		t.Errorf("the same app built twice: %s and %s", d1, d2)
	}
	archive := filepath.Join(t.TempDir(), "app.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := images.WriteArchive(f, res.Image, "cameleer.local/hello:1"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rootfs := unpackImage(t, archive)
	cf, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(rootfs, "proc"), 0o555); err != nil {
		t.Fatal(err)
	}
	// As a runtime would: /proc mounted, the image's environment and user
	// (chroot --userspec), the agent serving its JVM facts on a free port.
	// The app's main returns: the JVM must end, the agent's server thread
	// must not keep it (the bound is for a hang, not a speed claim).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	user := cf.Config.User
	script := `/bin/mount -t proc proc "$0/proc" && exec /usr/sbin/chroot --userspec="$1" "$0" "${@:2}"`
	cmd := exec.CommandContext(ctx, "/usr/bin/unshare", append([]string{"--mount", "--propagation", "private", "/bin/bash", "-c", script, rootfs, user}, cf.Config.Entrypoint...)...)
	cmd.Env = append(append([]string{}, cf.Config.Env...), "CAMELEER_AGENT_PORT="+strconv.Itoa(port))
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the app's main returned but its JVM did not end (the agent keeps it alive?):\n%s", out)
	}
	if err != nil {
		t.Fatalf("run %v: %v\n%s", cf.Config.Entrypoint, err, out)
	}
	if strings.Contains(string(out), "cannot serve") {
		t.Errorf("the agent did not serve, so its thread was not tried:\n%s", out)
	}
	for _, want := range []string{"cameleer-agent ", " attached", "hello from the app, GREETING=bonjour, user cameleer"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
