package engine

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/cameleer/cameleer/appliance/supervisor"
	"github.com/cameleer/cameleer/internal/backoff"
)

// The lifecycles of the engine's three kinds of component: a child process
// (Process), something that runs inside cameleer (InProcess), and a one-shot
// task (Task). Without a Check, each is ready as soon as it started.

// Process is a component that is a child process: the supervisor restarts
// it when it exits and keeps its output in a rotated log.
type Process struct {
	Child *supervisor.Process
	// Prepare runs before every Start, to clear what a killed child left.
	Prepare func(ctx context.Context) error
	// Check reports nil once the process serves.
	Check func(ctx context.Context) error
}

func (p *Process) Start(ctx context.Context) error {
	if p.Prepare != nil {
		if err := p.Prepare(ctx); err != nil {
			return err
		}
	}
	return p.Child.Start(ctx)
}

func (p *Process) Ready(ctx context.Context) error { return check(ctx, p.Check) }

func (p *Process) Stop() error { return p.Child.Stop() }

func (p *Process) Status() Activity {
	s := p.Child.Status()
	a := Activity{State: s.State, PID: s.PID, Restarts: s.Restarts, Since: s.Since}
	if s.LastExit != "" {
		a.LastError = "last exit: " + s.LastExit
	}
	return a
}

// InProcess is a component that runs inside cameleer: Run serves until its
// ctx ends. A return before that is a crash, and Run is called again after a
// backoff, reset once a run lasted supervisor.DefaultStableAfter, as the
// supervisor restarts a process.
type InProcess struct {
	Run func(ctx context.Context) error
	// Check reports nil once it serves.
	Check func(ctx context.Context) error
	// Log is told of crashes; nil means slog.Default().
	Log *slog.Logger
	// MinBackoff and MaxBackoff bound the wait before a restart; zero means
	// the supervisor's defaults.
	MinBackoff, MaxBackoff time.Duration

	mu       sync.Mutex
	activity Activity
	stop     context.CancelFunc
	done     chan struct{}
}

func (c *InProcess) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return errors.New("already started")
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	// The run outlives ctx, which bounds the start only: Stop ends it, in
	// its turn.
	ctx, c.stop = context.WithCancel(context.WithoutCancel(ctx))
	c.done = make(chan struct{})
	go c.keepRunning(ctx)
	return nil
}

func (c *InProcess) keepRunning(ctx context.Context) {
	defer close(c.done)
	retry := backoff.New(cmp.Or(c.MinBackoff, supervisor.DefaultMinBackoff), cmp.Or(c.MaxBackoff, supervisor.DefaultMaxBackoff))
	for {
		c.enter(supervisor.StateRunning)
		started := time.Now()
		err := c.Run(ctx)
		if ctx.Err() != nil {
			c.enter(supervisor.StateStopped)
			return
		}
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		if time.Since(started) >= supervisor.DefaultStableAfter {
			retry.Reset()
		}
		c.Log.Warn("in-process component failed", "err", err)
		c.mu.Lock()
		c.activity = Activity{State: StateFailed, Since: time.Now(), Restarts: c.activity.Restarts + 1, LastError: err.Error()}
		c.mu.Unlock()
		if !sleep(ctx, retry.Next()) {
			c.enter(supervisor.StateStopped)
			return
		}
	}
}

func (c *InProcess) enter(state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.activity.State, c.activity.Since = state, time.Now()
}

func (c *InProcess) Ready(ctx context.Context) error { return check(ctx, c.Check) }

func (c *InProcess) Status() Activity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.activity
}

func (c *InProcess) Stop() error {
	c.mu.Lock()
	stop, done := c.stop, c.done
	c.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	<-done
	return nil
}

// Task is a one-shot component: Start runs Do, and the task is done once Do
// returned nil.
type Task struct {
	Do func(ctx context.Context) error
	// Check reports nil once what Do did took effect.
	Check func(ctx context.Context) error

	done time.Time
}

func (t *Task) Start(ctx context.Context) error {
	if err := t.Do(ctx); err != nil {
		return err
	}
	t.done = time.Now()
	return nil
}

func (t *Task) Ready(ctx context.Context) error { return check(ctx, t.Check) }

// Status is called only after Start returned nil: done is set by then.
func (t *Task) Status() Activity { return Activity{State: StateDone, Since: t.done} }

func (t *Task) Stop() error { return nil }

func check(ctx context.Context, f func(context.Context) error) error {
	if f == nil {
		return nil
	}
	return f(ctx)
}
