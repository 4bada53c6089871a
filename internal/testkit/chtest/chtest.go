// Package chtest starts a ClickHouse server of a test's own on loopback and
// removes it, and its data, when the test ends. It is test support: only
// tests import it. The server is clickhouse-server from scripts/deps.sh
// (Debian 12's, 18.16); its config is generated here in the form both that
// and current releases read.
package chtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// startTimeout bounds how long the server may take to answer.
const startTimeout = 60 * time.Second

// Start runs a ClickHouse server in a temporary directory, listening on a
// free loopback port for HTTP only, and returns its URL once it answers.
// It skips the test with -short, and when clickhouse-server is not
// installed, unless CI is set: there its absence fails the test. Cleanup
// kills the server by its PID and removes its directory.
func Start(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a ClickHouse server: not with -short")
	}
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/clickhouse-server")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("clickhouse-server is not installed (scripts/deps.sh installs it): %v", err)
		}
		t.Skip("clickhouse-server is not installed: run scripts/deps.sh to test the ClickHouse store")
	}
	dir, err := os.MkdirTemp("", "chtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port := testutil.FreePort(t)
	if err := writeConfig(dir, port); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(bin, "--config-file="+filepath.Join(dir, "config.xml"))
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start clickhouse-server: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	// Registered after the directory's removal, so it runs before it.
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitReady(url, exited, &waitErr); err != nil {
		logs, _ := os.ReadFile(filepath.Join(dir, "server.err.log"))
		stdout, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
		t.Fatalf("clickhouse-server: %v\nstdout:\n%s\nerror log:\n%s", err, stdout, tail(logs, 4000))
	}
	return url
}

// writeConfig writes the server's config.xml and users.xml: HTTP on
// loopback only, everything under dir, one user (default, no password,
// loopback only), caches small enough for a test.
func writeConfig(dir string, port int) error {
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/server.log</log><errorlog>%[1]s/server.err.log</errorlog></logger>
  <http_port>%[2]d</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <mlock_executable>false</mlock_executable>
</yandex>
`, dir, port)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o600)
}

// waitReady polls the server's /ping until it answers, it exits (exited
// closes, *waitErr says how), or startTimeout passes.
func waitReady(url string, exited <-chan struct{}, waitErr *error) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/ping", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.HasPrefix(string(body), "Ok.") {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before it answered: %v", *waitErr)
		case <-ctx.Done():
			return fmt.Errorf("no answer at %s within %s", url, startTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
