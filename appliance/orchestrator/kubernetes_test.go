package orchestrator

import "testing"

// A deployment fails at once on what waiting will not mend, and waits on
// what the kubelet mends by itself.
func TestIsStuck(t *testing.T) {
	for _, c := range []struct {
		reason, message string
		want            bool
	}{
		{"CrashLoopBackOff", "back-off 10s restarting failed container", true},
		{"CreateContainerConfigError", `secret "orders-secrets" not found`, true},
		{"CreateContainerConfigError", "failed to sync secret cache: timed out waiting for the condition", false},
		{"ContainerCreating", "", false},
	} {
		if got := isStuck(c.reason, c.message); got != c.want {
			t.Errorf("%s %q: stuck %t, want %t", c.reason, c.message, got, c.want)
		}
	}
}
