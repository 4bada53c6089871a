package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// shutdownGrace bounds how long a stopping daemon waits for its goroutines.
const shutdownGrace = 10 * time.Second

// parseEnv reads KEY=VALUE lines as in /run/flannel/subnet.env; blank lines
// and # comments are skipped, surrounding quotes removed.
func parseEnv(s string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		env[strings.TrimSpace(key)] = value
	}
	return env
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so readers never see a partial file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// waitGroupTimeout waits for wg, but not longer than shutdownGrace: a
// goroutine of a library stuck in an exec must not hold up the exit.
func waitGroupTimeout(wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		klog.Warningf("Some goroutines did not stop within %s; exiting anyway", shutdownGrace)
	}
}

// needExecutables fails with the first of names not found on $PATH: the
// upstream libraries run these tools and would fail later, halfway through.
func needExecutables(pkg string, names ...string) error {
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("%s not found on $PATH (install the %s package)", name, pkg)
		}
	}
	return nil
}
