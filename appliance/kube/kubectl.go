package kube

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// FieldManager owns every field the appliance applies.
const FieldManager = "cameleer"

// Kubectl runs a kubectl binary (the payload's) as the user of a kubeconfig.
type Kubectl struct {
	Path       string
	Kubeconfig string
}

// Command is kubectl with args, for callers that stream its output.
func (k Kubectl) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, k.Path, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
}

// Run runs kubectl with stdin (nil: none) and returns its output; a failure
// carries what kubectl said.
func (k Kubectl) Run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	cmd := k.Command(ctx, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// One line: it ends up in a deployment's reason.
		msg := strings.ReplaceAll(strings.TrimSpace(stderr.String()), "\n", "; ")
		return nil, fmt.Errorf("kubectl %s: %w: %s", args[0], err, msg)
	}
	return out, nil
}

// Apply applies the YAML documents in doc server-side, as FieldManager, so
// applying them again changes nothing and the appliance's fields win.
func (k Kubectl) Apply(ctx context.Context, doc []byte) error {
	_, err := k.Run(ctx, doc, "apply", "--server-side", "--force-conflicts", "--field-manager="+FieldManager, "-f", "-")
	return err
}
