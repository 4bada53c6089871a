package nodetool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/appliance/config"
)

func TestParseArgs(t *testing.T) {
	for _, c := range []struct {
		args      []string
		dataDir   string
		ownConfig bool
		rest      []string
	}{
		{[]string{"get", "nodes"}, "", false, []string{"get", "nodes"}},
		{[]string{"--data-dir", "/d", "get", "nodes"}, "/d", false, []string{"get", "nodes"}},
		{[]string{"get", "--data-dir=/d", "nodes"}, "/d", false, []string{"get", "nodes"}},
		{[]string{"--kubeconfig", "/d/kubeconfig.yaml", "get", "nodes"}, "", true, []string{"--kubeconfig", "/d/kubeconfig.yaml", "get", "nodes"}},
		{[]string{"--kubeconfig=/k", "get", "nodes"}, "", true, []string{"--kubeconfig=/k", "get", "nodes"}},
		// After "--" everything is the tool's, or its command's.
		{[]string{"exec", "p", "--", "sh", "--data-dir", "/x", "--kubeconfig"}, "", false, []string{"exec", "p", "--", "sh", "--data-dir", "/x", "--kubeconfig"}},
		{[]string{"--help"}, "", false, []string{"--help"}},
	} {
		call, err := Kubectl().ParseArgs(c.args)
		if err != nil || call.DataDir != c.dataDir || call.OwnConfig != c.ownConfig || !reflect.DeepEqual(call.Args, c.rest) {
			t.Errorf("%q: %+v, %v; want data dir %q, own config %v, args %q", c.args, call, err, c.dataDir, c.ownConfig, c.rest)
		}
	}
	for _, args := range [][]string{{"get", "--data-dir"}, {"--data-dir=", "get"}} {
		if _, err := Kubectl().ParseArgs(args); err == nil || !strings.Contains(err.Error(), "--data-dir needs a directory") {
			t.Errorf("%q: %v", args, err)
		}
	}
	// ctr has no flag of its own for that: --kubeconfig goes through.
	if call, _ := Ctr().ParseArgs([]string{"--kubeconfig", "k"}); call.OwnConfig {
		t.Errorf("ctr took --kubeconfig as its own config")
	}
}

// kubectl given --kubeconfig runs without an installed node, its
// arguments untouched; without it, a data dir with no node is an error
// that says so.
func TestKubectlWithItsOwnKubeconfig(t *testing.T) {
	dataDir := t.TempDir()
	bin := filepath.Join(dataDir, "bin", "current", "bin")
	os.MkdirAll(bin, 0o755)
	out := filepath.Join(t.TempDir(), "args")
	script := "#!/bin/sh\necho \"$@\" > " + out + "\nexit 3\n"
	if err := os.WriteFile(filepath.Join(bin, "kubectl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	call, err := Kubectl().ParseArgs([]string{"--kubeconfig", "/k.yaml", "--data-dir", dataDir, "get", "nodes"})
	if err != nil {
		t.Fatal(err)
	}
	code, err := Kubectl().Run(context.Background(), call)
	got, _ := os.ReadFile(out)
	if err != nil || code != 3 || strings.TrimSpace(string(got)) != "--kubeconfig /k.yaml get nodes" {
		t.Errorf("exit %d, %v; kubectl was given %q", code, err, got)
	}
	call.OwnConfig = false
	if _, err := Kubectl().Run(context.Background(), call); !errors.Is(err, config.ErrNotInstalled) {
		t.Errorf("no node, no --kubeconfig: %v", err)
	}
}
