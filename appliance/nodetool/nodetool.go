// Package nodetool runs the engine's own tools (kubectl, ctr) against a
// node: the node's data dir comes from --data-dir, taken out of the tool's
// arguments; given its own way to the node (kubectl's --kubeconfig), the
// tool needs no installed node, and comes from the executable's payload if
// no node has it extracted.
package nodetool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/payload"
)

// Tool is a tool of the payload run against a node.
type Tool struct {
	// Name is the tool's, Short what it is for.
	Name, Short string
	// args come before the user's; env is added to the environment.
	args func(config.Config) []string
	env  func(config.Config) []string
	// ownConfig says which argument gives the tool its own way to the node
	// (kubectl's --kubeconfig): with it, no installed node is needed.
	ownConfig string
}

// Kubectl is kubectl as cluster admin.
func Kubectl() Tool {
	return Tool{Name: "kubectl", Short: "Run kubectl against this node as cluster admin",
		args:      func(config.Config) []string { return nil },
		env:       func(c config.Config) []string { return []string{"KUBECONFIG=" + c.AdminKubeconfig()} },
		ownConfig: "--kubeconfig"}
}

// Ctr is ctr on the node's containerd, in Kubernetes' namespace.
func Ctr() Tool {
	return Tool{Name: "ctr", Short: "Run containerd's ctr against this node's containerd, namespace k8s.io",
		args: func(c config.Config) []string {
			return []string{"--address", c.ContainerdSocket(), "--namespace", "k8s.io"}
		},
		env: func(config.Config) []string { return nil }}
}

// Call is a tool command's arguments, --data-dir taken out.
type Call struct {
	DataDir string // "" when not given
	// OwnConfig says the arguments give the tool its own way to the node.
	OwnConfig bool
	Args      []string
}

// ParseArgs takes --data-dir DIR and --data-dir=DIR out of args and
// notes ownConfig (a flag like --kubeconfig), up to a "--": what follows
// it is the tool's, or a command's the tool runs.
func (t Tool) ParseArgs(args []string) (Call, error) {
	ownConfig := t.ownConfig
	var call Call
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			call.Args = append(call.Args, args[i:]...)
			return call, nil
		case a == "--data-dir" || strings.HasPrefix(a, "--data-dir="):
			v, ok := strings.CutPrefix(a, "--data-dir=")
			if !ok {
				if i+1 == len(args) {
					return call, errors.New("--data-dir needs a directory")
				}
				i++
				v = args[i]
			}
			if v == "" {
				return call, errors.New("--data-dir needs a directory")
			}
			call.DataDir = v
			continue
		case ownConfig != "" && (a == ownConfig || strings.HasPrefix(a, ownConfig+"=")):
			call.OwnConfig = true
		}
		call.Args = append(call.Args, a)
	}
	return call, nil
}

// Run runs the tool and returns its exit code. Given its own way to the
// node, the tool needs no installed node: it comes from the data dir's
// engine if there is one, else from this executable's payload.
func (t Tool) Run(ctx context.Context, call Call) (int, error) {
	c := config.Config{DataDir: call.DataDir}
	var args, env []string
	if !call.OwnConfig {
		var err error
		if c, err = config.Load(call.DataDir); err != nil {
			return 0, err
		}
		args, env = t.args(c), t.env(c)
	}
	bin := c.Path("bin", "current", "bin", t.Name)
	if _, err := os.Stat(bin); err != nil {
		if !call.OwnConfig {
			return 0, fmt.Errorf("%s is not extracted under %s: run `cameleer install`", t.Name, filepath.Dir(bin))
		}
		tmp, err := os.MkdirTemp("", "cameleer-"+t.Name+"-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(tmp)
		if bin, err = extractTool(ctx, t.Name, tmp); err != nil {
			return 0, err
		}
	}
	x := exec.CommandContext(ctx, bin, append(args, call.Args...)...)
	x.Stdin, x.Stdout, x.Stderr = os.Stdin, os.Stdout, os.Stderr
	x.Env = append(os.Environ(), env...)
	err := x.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	return 0, err
}

// extractTool writes the payload's bin/NAME into dir, under its name (the
// engine's kube binary is each of its tools by the name it is run as).
func extractTool(ctx context.Context, name, dir string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	p, err := payload.Open(exe)
	if err != nil {
		return "", err
	}
	defer p.Close()
	bin := filepath.Join(dir, name)
	return bin, p.ExtractFile(ctx, "bin/"+name, bin)
}
