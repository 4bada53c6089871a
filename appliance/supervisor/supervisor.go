// Package supervisor runs the engine's components as child processes: it
// starts one, restarts it with jittered exponential backoff whenever it
// exits, keeps its output in a rotated log file, and stops it gracefully
// (SIGTERM to its process group, then SIGKILL after a timeout).
//
// Each child carries a marker in its environment and a pid file in RunDir,
// so a supervisor that was killed and started again finds the child it left
// behind and kills it, and never kills a process that is provably not its own.
package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cameleer/cameleer/internal/backoff"
)

// markerEnv names the environment variable that marks a supervised child.
const markerEnv = "_CAMELEER_SUPERVISED"

// Defaults for the zero values of Process' tuning fields.
const (
	DefaultStopTimeout = 10 * time.Second
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultStableAfter = 30 * time.Second
	defaultLogSize     = 10 << 20
	defaultLogKeep     = 3
)

// States a Process is in.
const (
	StateStopped  = "stopped"
	StateRunning  = "running"
	StateBackoff  = "backoff"  // exited; waiting to restart
	StateStopping = "stopping" // SIGTERM sent
)

// Process supervises one child process. Set the fields, then call Start.
type Process struct {
	Name string
	Path string
	Args []string
	// Env is added to the supervisor's own environment.
	Env []string
	Dir string
	// RunDir holds the pid file NAME.pid; LogDir the log NAME.log.
	RunDir string
	LogDir string

	StopTimeout time.Duration
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	// StableAfter is how long a child must run for the next restart to wait
	// MinBackoff again.
	StableAfter time.Duration
	Log         *slog.Logger

	mu       sync.Mutex
	state    string
	pid      int
	restarts int
	lastExit string
	started  time.Time
	stop     chan struct{}
	done     chan struct{}
	log      *rotatingFile
}

// Status is a snapshot of a Process.
type Status struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	PID      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"`
	LastExit string    `json:"lastExit,omitempty"`
	Since    time.Time `json:"since,omitzero"`
}

// Status reports what the process is doing now.
func (p *Process) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{Name: p.Name, State: p.state, PID: p.pid, Restarts: p.restarts, LastExit: p.lastExit, Since: p.started}
	if s.State == "" {
		s.State = StateStopped
	}
	return s
}

// LogPath is the file the child's output goes to.
func (p *Process) LogPath() string { return filepath.Join(p.LogDir, p.Name+".log") }

func (p *Process) pidPath() string { return filepath.Join(p.RunDir, p.Name+".pid") }

// marker identifies this component of this data dir in a child's environment.
func (p *Process) marker() string { return p.Name + "@" + p.RunDir }

// Start kills a child a previous supervisor left behind, starts the child,
// and keeps it running in the background until Stop. It fails if the first
// start fails (a missing binary, a bad directory).
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.done != nil {
		p.mu.Unlock()
		return fmt.Errorf("%s: already started", p.Name)
	}
	p.mu.Unlock()
	p.setDefaults()
	for _, d := range []string{p.RunDir, p.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("start %s: %w", p.Name, err)
		}
	}
	if err := p.killStale(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	lf, err := openRotating(p.LogPath(), defaultLogSize, defaultLogKeep)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	cmd, err := p.spawn(lf)
	if err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.mu.Lock()
	p.log = lf
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	p.mu.Unlock()
	go p.supervise(cmd)
	return nil
}

func (p *Process) setDefaults() {
	if p.StopTimeout == 0 {
		p.StopTimeout = DefaultStopTimeout
	}
	if p.MinBackoff == 0 {
		p.MinBackoff = DefaultMinBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	if p.StableAfter == 0 {
		p.StableAfter = DefaultStableAfter
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	p.Log = p.Log.With("component", p.Name)
}

// spawn starts the child once and records it.
func (p *Process) spawn(out *rotatingFile) (*exec.Cmd, error) {
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(append(os.Environ(), p.Env...), markerEnv+"="+p.marker())
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so stopping it reaches the children it forks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.pidPath(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		p.Log.Warn("write pid file", "err", err)
	}
	p.mu.Lock()
	p.state, p.pid, p.started = StateRunning, cmd.Process.Pid, time.Now()
	p.mu.Unlock()
	p.Log.Info("started", "pid", cmd.Process.Pid)
	return cmd, nil
}

func (p *Process) supervise(cmd *exec.Cmd) {
	defer close(p.done)
	defer p.log.Close()
	retry := p.backoff()
	for {
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-p.stop:
			p.terminate(cmd, exited)
			return
		case err := <-exited:
			ran := time.Since(p.Status().Since)
			if ran >= p.StableAfter {
				retry.Reset()
			}
			p.mu.Lock()
			p.state, p.pid, p.lastExit = StateBackoff, 0, exitReason(err)
			p.mu.Unlock()
			os.Remove(p.pidPath())
			p.Log.Warn("exited", "reason", exitReason(err), "ran", ran.Round(time.Millisecond))
		}
		for {
			select {
			case <-p.stop:
				p.mu.Lock()
				p.state = StateStopped
				p.mu.Unlock()
				return
			case <-time.After(retry.Next()):
			}
			var err error
			if cmd, err = p.spawn(p.log); err == nil {
				p.mu.Lock()
				p.restarts++
				p.mu.Unlock()
				break
			}
			p.mu.Lock()
			p.lastExit = "start: " + err.Error()
			p.mu.Unlock()
			p.Log.Error("restart failed", "err", err)
		}
	}
}

// backoff spaces restarts out: exponential from MinBackoff to MaxBackoff,
// half of each wait random so components that fail together do not restart
// in lockstep.
func (p *Process) backoff() *backoff.Backoff {
	return backoff.New(p.MinBackoff, p.MaxBackoff)
}

// terminate sends SIGTERM to the child's process group and SIGKILL if it has
// not exited after StopTimeout.
func (p *Process) terminate(cmd *exec.Cmd, exited <-chan error) {
	p.mu.Lock()
	p.state = StateStopping
	p.mu.Unlock()
	pid := cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		p.Log.Info("stopped", "reason", exitReason(err))
	case <-time.After(p.StopTimeout):
		p.Log.Warn("did not stop in time, killing", "timeout", p.StopTimeout)
		syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
	// Whatever of its group outlived it.
	syscall.Kill(-pid, syscall.SIGKILL)
	os.Remove(p.pidPath())
	p.mu.Lock()
	p.state, p.pid = StateStopped, 0
	p.mu.Unlock()
}

// Stop stops the child and waits for it. It is safe to call in any state and
// more than once.
func (p *Process) Stop() error {
	p.mu.Lock()
	stop, done := p.stop, p.done
	if stop != nil {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}
	p.mu.Unlock()
	if done != nil {
		<-done
	}
	return nil
}

// Wait blocks until the process has been stopped.
func (p *Process) Wait() {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}

// killStale kills the child named in the pid file if, and only if, its
// environment carries this component's marker.
func (p *Process) killStale() error {
	b, err := os.ReadFile(p.pidPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer os.Remove(p.pidPath())
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return nil
	}
	if !IsOwn(pid, p.marker()) {
		return nil
	}
	p.Log.Warn("killing child left by a previous supervisor", "pid", pid)
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(p.StopTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !alive(pid) {
			return nil
		}
	}
	return fmt.Errorf("stale %s (pid %d) does not die", p.Name, pid)
}

// IsOwn tells whether pid is a live process whose environment carries the
// supervisor marker with the given value.
func IsOwn(pid int, marker string) bool {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	return bytes.Contains(append([]byte{0}, env...), []byte("\x00"+markerEnv+"="+marker+"\x00"))
}

// alive tells whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
