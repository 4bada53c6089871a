//go:build payload

package payload_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/appliance/build"
	"github.com/cameleer/cameleer/appliance/images"
	"github.com/cameleer/cameleer/appliance/payload"
	"github.com/cameleer/cameleer/internal/testutil"
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

	res, err := build.Image(build.Input{Base: base, Agent: agentJar, App: app, Env: []string{"GREETING=bonjour"}})
	if err != nil {
		t.Fatal(err)
	}
	again, err := build.Image(build.Input{Base: base, Agent: agentJar, App: app, Env: []string{"GREETING=bonjour"}})
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
	// (chroot --userspec), the agent's port off so nothing listens.
	user := cf.Config.User
	script := `/bin/mount -t proc proc "$0/proc" && exec /usr/sbin/chroot --userspec="$1" "$0" "${@:2}"`
	cmd := exec.Command("/usr/bin/unshare", append([]string{"--mount", "--propagation", "private", "/bin/bash", "-c", script, rootfs, user}, cf.Config.Entrypoint...)...)
	cmd.Env = append(append([]string{}, cf.Config.Env...), "CAMELEER_AGENT_PORT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run %v: %v\n%s", cf.Config.Entrypoint, err, out)
	}
	for _, want := range []string{"cameleer-agent ", " attached", "hello from the app, GREETING=bonjour, user cameleer"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
