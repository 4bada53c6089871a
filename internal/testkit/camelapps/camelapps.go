// Package camelapps builds the real Apache Camel apps of test/apps with
// Maven, for the tests that run them: under the agent alone, or deployed
// through the control plane. It is test support: only tests import it.
package camelapps

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// An App is one of test/apps built for one Camel version.
type App struct {
	// Kind is the directory under test/apps: camel-main (an uber JAR) or
	// spring-boot (a Spring Boot fat JAR).
	Kind  string
	Camel string
	// SpringBoot is the Spring Boot version a spring-boot app is built
	// with; Camel must be its camel-spring-boot-bom's.
	SpringBoot string
}

// The matrix: the oldest Camel LTS line we support and the newest served,
// each packaged both ways.
var (
	MainLTS    = App{Kind: "camel-main", Camel: "4.14.2"}
	MainNewest = App{Kind: "camel-main", Camel: "4.22.0"}
	Boot3      = App{Kind: "spring-boot", Camel: "4.17.0", SpringBoot: "3.5.7"}
	Boot4      = App{Kind: "spring-boot", Camel: "4.22.0", SpringBoot: "4.0.7"}
)

// Name says which app it is, for test names.
func (a App) Name() string { return a.Kind + "-" + a.Camel }

// Root is the repository's root: the nearest directory up from the test's
// that has go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Build packages a with Maven (once per run of the build: Maven skips
// what is up to date) and returns the JAR's path. Test packages run at the
// same time share test/apps' output: a lock file keeps their Maven runs
// apart.
func Build(t testing.TB, a App) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds Camel apps with Maven")
	}
	root := Root(t)
	out := filepath.Join(root, "build", "testapps")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lock(filepath.Join(out, ".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	args := []string{"-q", "-B", "package", "-Dcamel.version=" + a.Camel}
	if a.SpringBoot != "" {
		args = append(args, "-Dspring-boot.version="+a.SpringBoot)
	}
	cmd := exec.Command("mvn", args...)
	cmd.Dir = filepath.Join(root, "test", "apps", a.Kind)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mvn %v in test/apps/%s: %v\n%s", args, a.Kind, err, b)
	}
	jar := filepath.Join(out, a.Kind, a.Camel, "app.jar")
	if _, err := os.Stat(jar); err != nil {
		t.Fatalf("Maven built no %s: %v", jar, err)
	}
	return jar
}

// lock takes an exclusive lock on path, waiting for it.
func lock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock the test apps' build: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the test apps' build: %w", err)
	}
	return func() { f.Close() }, nil
}
