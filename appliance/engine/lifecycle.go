package engine

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cameleer/cameleer/appliance/supervisor"
	"github.com/cameleer/cameleer/internal/backoff"
)

// Lifecycle is how the Engine drives a component, through these states:
//
//	waiting ──what it Needs is ready──► starting ──Start: nil──► started ──Ready: nil──► ready
//	                                     ▲    │
//	                              backoff│    │Start: error
//	                                     │    ▼
//	                                     failed
//
//	any state ──the engine's ctx ends and every Start has returned──► Stop,
//	            one component after the other, in reverse list order
//
// Start prepares the component and sets it going: a process or a server
// keeps running in the background until Stop, and restarts itself when it
// crashes; a task has done its work when Start returns nil. Start fails on
// what clears up by itself (an apiserver still warming up, a port still
// held), so a failed Start is called again: it must be safe to repeat. Its
// ctx bounds the start only, never what keeps running.
//
// Ready and Status are called only once Start returned nil, then at any
// time and concurrently. Ready is asked every 100 ms until it first answers
// nil, which makes the component ready for good: what needs it starts. Then
// it is asked every 5 s and on every status request; a failing answer is
// shown, not acted on. Until started, status shows the engine's state of
// the component; from then on, its Status.
//
// Stop is called once for every component, in whatever state it is, even
// never started. It stops what Start set going and waits for it.
type Lifecycle interface {
	Start(ctx context.Context) error
	Ready(ctx context.Context) error
	Status() Activity
	Stop() error
}

// Component is one part of the engine: its name, the components it needs
// ready before it starts, and its lifecycle.
type Component struct {
	Name  string
	Needs []*Component
	Lifecycle
}

// Activity is what a started component says it is doing.
type Activity struct {
	State    string // a supervisor state, StateFailed or StateDone
	PID      int
	Restarts int       // after crashes
	Since    time.Time // when it entered State
	// LastError is why it last stopped running; shown while it is not ready.
	LastError string
}

// How often readiness is checked: quickly while a component comes up, slowly
// once it is up.
const (
	startProbeInterval = 100 * time.Millisecond
	probeInterval      = 5 * time.Second
)

// States a component is in before it runs, beyond the supervisor's.
const (
	StateWaiting  = "waiting" // for the components it needs
	StateStarting = "starting"
	StateFailed   = "failed" // Start, or an in-process run, failed; retrying
	StateDone     = "done"   // a task that succeeded
)

// The engine's own record of a component once Start returned nil; what
// status shows then is the component's Activity.
const (
	stateStarted = "started"
	stateStopped = "stopped"
)

// ComponentStatus is what `cameleer status` shows of one component.
type ComponentStatus struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	PID      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"`
	Ready    bool      `json:"ready"`
	Message  string    `json:"message,omitempty"`
	Since    time.Time `json:"since,omitzero"`
}

// Engine starts components in dependency order and stops them in reverse.
type Engine struct {
	log   *slog.Logger
	units []*unit // in start order
	// A failed Start is retried after waits from minBackoff to maxBackoff.
	minBackoff, maxBackoff time.Duration
}

// unit is the engine's record of one component.
type unit struct {
	*Component
	needs []*unit
	ready chan struct{} // closed the first time the component is ready

	mu       sync.Mutex
	state    string
	isReady  bool
	message  string // why Start or Ready last failed
	failures int    // of Start
	since    time.Time
}

// New checks that every dependency is a component listed before the one
// that needs it, so the list order is a valid start order and the
// dependencies have no cycle.
func New(log *slog.Logger, components []*Component) (*Engine, error) {
	e := &Engine{log: log, minBackoff: supervisor.DefaultMinBackoff, maxBackoff: supervisor.DefaultMaxBackoff}
	listed := map[*Component]*unit{}
	names := map[string]bool{}
	for i, c := range components {
		if c == nil || c.Lifecycle == nil {
			return nil, fmt.Errorf("component %d in the list has no lifecycle", i+1)
		}
		if names[c.Name] {
			return nil, fmt.Errorf("component %s listed twice", c.Name)
		}
		u := &unit{Component: c, ready: make(chan struct{}), state: StateWaiting}
		for _, n := range c.Needs {
			nu, ok := listed[n]
			if !ok {
				name := "a nil component"
				if n != nil {
					name = n.Name
				}
				return nil, fmt.Errorf("component %s needs %s, which is not listed before it", c.Name, name)
			}
			u.needs = append(u.needs, nu)
		}
		listed[c], names[c.Name] = u, true
		e.units = append(e.units, u)
	}
	return e, nil
}

// Run starts every component as soon as what it needs is ready, keeps
// checking readiness, and when ctx is done stops them in reverse order. It
// returns once everything has stopped.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, u := range e.units {
		wg.Go(func() { e.run(ctx, u) })
	}
	wg.Wait()
	for _, u := range slices.Backward(e.units) {
		if err := u.Stop(); err != nil {
			e.log.Warn("stop", "component", u.Name, "err", err)
		}
		u.mu.Lock()
		if u.state == stateStarted {
			u.setLocked(stateStopped, "")
		}
		u.mu.Unlock()
	}
	return nil
}

// AllReady returns nil once every component was ready.
func (e *Engine) AllReady(ctx context.Context) error {
	for _, u := range e.units {
		select {
		case <-u.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Status reports every component, in start order. Readiness is checked
// afresh, so a component killed a moment ago does not show as ready.
func (e *Engine) Status(ctx context.Context) []ComponentStatus {
	e.refresh(ctx)
	out := make([]ComponentStatus, 0, len(e.units))
	for _, u := range e.units {
		u.mu.Lock()
		s := ComponentStatus{Name: u.Name, State: u.state, Ready: u.isReady, Message: u.message, Restarts: u.failures, Since: u.since}
		u.mu.Unlock()
		if s.State == stateStarted || s.State == stateStopped {
			a := u.Status()
			s.State, s.PID, s.Since = a.State, a.PID, a.Since
			s.Restarts += a.Restarts
			if s.Message == "" && !s.Ready {
				s.Message = a.LastError
			}
		}
		out = append(out, s)
	}
	return out
}

// refresh checks the readiness of every started component.
func (e *Engine) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, u := range e.units {
		u.mu.Lock()
		started := u.state == stateStarted
		u.mu.Unlock()
		if started {
			wg.Go(func() { u.setReady(u.Ready(ctx)) })
		}
	}
	wg.Wait()
}

// run waits for what the component needs, starts it, retrying with backoff,
// and checks its readiness until ctx is done.
func (e *Engine) run(ctx context.Context, u *unit) {
	for _, n := range u.needs {
		select {
		case <-n.ready:
		case <-ctx.Done():
			return
		}
	}
	log := e.log.With("component", u.Name)
	retry := backoff.New(e.minBackoff, e.maxBackoff)
	for {
		u.set(StateStarting, "")
		err := u.Start(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		u.mu.Lock()
		u.failures++
		attempt := u.failures
		u.setLocked(StateFailed, err.Error())
		u.mu.Unlock()
		log.Warn("start failed", "err", err, "attempt", attempt)
		if !sleep(ctx, retry.Next()) {
			return
		}
	}
	u.set(stateStarted, "")
	log.Info("started")
	e.probe(ctx, u, log)
}

// probe checks readiness until ctx is done: every startProbeInterval until
// the first success, then every probeInterval.
func (e *Engine) probe(ctx context.Context, u *unit, log *slog.Logger) {
	interval := startProbeInterval
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := u.Ready(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		u.setReady(err)
		if err == nil && interval == startProbeInterval {
			log.Info("ready")
			close(u.ready)
			interval = probeInterval
		}
		if !sleep(ctx, interval) {
			return
		}
	}
}

func (u *unit) set(state, msg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.setLocked(state, msg)
}

// setLocked enters state, not ready: only a check makes a component ready.
func (u *unit) setLocked(state, msg string) {
	if u.state != state {
		u.since = time.Now()
	}
	u.state, u.isReady, u.message = state, false, msg
}

// setReady records a readiness check, unless the component stopped since.
func (u *unit) setReady(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.state != stateStarted {
		return
	}
	u.isReady, u.message = err == nil, ""
	if err != nil {
		u.message = err.Error()
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
