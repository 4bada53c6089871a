package dockertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// RegistryFree fails the test unless 127.0.0.1:5000 is free: a runner on
// Docker serves its registry there (a node of the engine does too).
func RegistryFree(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:5000")
	if err != nil {
		t.Fatalf("the runner's registry needs 127.0.0.1:5000, which is taken (a node running?): %v", err)
	}
	l.Close()
}

// Runner is a `cameleer run` child process of a test whose apps run on a
// Daemon.
type Runner struct {
	Cmd     *exec.Cmd
	LogFile string
	exited  chan struct{}
}

// StartRunner starts cmd (a `cameleer run`, or what execs one: its PID
// must become the runner's) with its output in logFile. Cleanup stops it
// by its PID (SIGTERM, then SIGKILL after 30 s) and, if the test failed,
// shows its log and the daemon's containers; the containers themselves
// go with the daemon's cleanup, which removes every one before the daemon
// stops.
func (d *Daemon) StartRunner(t *testing.T, logFile string, cmd *exec.Cmd) *Runner {
	t.Helper()
	r := &Runner{Cmd: cmd, LogFile: logFile, exited: make(chan struct{})}
	logf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); logf.Close(); close(r.exited) }()
	t.Cleanup(func() {
		// Through Process: it signals nothing once the runner was reaped
		// (its PID may be another process's by then).
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("the runner did not stop on SIGTERM in 30 s; killing it")
			r.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("runner log:\n%s", b)
			if cs, err := d.Containers(context.Background()); err == nil {
				for _, c := range cs {
					t.Logf("container %v: %s %s", c.Names, c.Image, c.State)
				}
			}
		}
	})
	return r
}

// Kill kills the runner (SIGKILL) and waits for it to end.
func (r *Runner) Kill() {
	r.Cmd.Process.Kill()
	<-r.exited
}

// Alive says why the runner is no more, if it is not.
func (r *Runner) Alive() error {
	select {
	case <-r.exited:
		b, _ := os.ReadFile(r.LogFile)
		return fmt.Errorf("the runner exited (%v):\n%s", r.Cmd.ProcessState, b)
	default:
		return nil
	}
}
