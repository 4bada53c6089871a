package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cameleer/cameleer/appliance/supervisor"
)

// How often readiness is checked: quickly while a component comes up, slowly
// once it is up.
const (
	startProbeInterval = 100 * time.Millisecond
	probeInterval      = 5 * time.Second
)

// Component states beyond the supervisor's.
const (
	StateWaiting = "waiting" // for the components it needs
	StateFailed  = "failed"  // Init or an in-process Run failed; retrying
	StateDone    = "done"    // a one-shot task that succeeded
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
	log        *slog.Logger
	components []*Component
	byName     map[string]*entry
}

type entry struct {
	c     *Component
	ready chan struct{} // closed the first time the component is ready

	mu       sync.Mutex
	state    string
	isReady  bool
	message  string
	restarts int
	since    time.Time
}

// New checks that every dependency names a component listed before it, so
// the list order is a valid start order.
func New(log *slog.Logger, components []*Component) (*Engine, error) {
	e := &Engine{log: log, components: components, byName: map[string]*entry{}}
	for _, c := range components {
		if _, dup := e.byName[c.Name]; dup {
			return nil, fmt.Errorf("component %s listed twice", c.Name)
		}
		for _, n := range c.Needs {
			if _, ok := e.byName[n]; !ok {
				return nil, fmt.Errorf("component %s needs %s, which is not listed before it", c.Name, n)
			}
		}
		e.byName[c.Name] = &entry{c: c, ready: make(chan struct{}), state: StateWaiting}
	}
	return e, nil
}

// Run starts every component as soon as what it needs is ready, keeps
// checking readiness, and when ctx is done stops them in reverse order. It
// returns once everything has stopped.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, c := range e.components {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.runComponent(ctx, e.byName[c.Name])
		}()
	}
	wg.Wait()
	for i := len(e.components) - 1; i >= 0; i-- {
		c := e.components[i]
		if c.Process == nil {
			continue
		}
		if err := c.Process.Stop(); err != nil {
			e.log.Warn("stop", "component", c.Name, "err", err)
		}
		e.byName[c.Name].set(supervisor.StateStopped, false, "")
	}
	return nil
}

// AllReady is closed once every component was ready.
func (e *Engine) AllReady(ctx context.Context) error {
	for _, c := range e.components {
		select {
		case <-e.byName[c.Name].ready:
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
	out := make([]ComponentStatus, 0, len(e.components))
	for _, c := range e.components {
		en := e.byName[c.Name]
		en.mu.Lock()
		s := ComponentStatus{Name: c.Name, State: en.state, Ready: en.isReady, Message: en.message, Restarts: en.restarts, Since: en.since}
		en.mu.Unlock()
		if c.Process != nil && s.State != StateWaiting && s.State != StateFailed {
			ps := c.Process.Status()
			s.State, s.PID, s.Restarts, s.Since = ps.State, ps.PID, ps.Restarts, ps.Since
			if s.Message == "" && ps.LastExit != "" && !s.Ready {
				s.Message = "last exit: " + ps.LastExit
			}
		}
		out = append(out, s)
	}
	return out
}

// refresh probes every started component that has a readiness check.
func (e *Engine) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range e.components {
		en := e.byName[c.Name]
		en.mu.Lock()
		started := en.state != StateWaiting && en.state != StateFailed && en.state != "starting"
		en.mu.Unlock()
		if c.Ready == nil || !started {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.Ready(ctx)
			en.mu.Lock()
			defer en.mu.Unlock()
			en.isReady = err == nil
			en.message = ""
			if err != nil {
				en.message = err.Error()
			}
		}()
	}
	wg.Wait()
}

func (en *entry) set(state string, ready bool, msg string) {
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.state != state {
		en.since = time.Now()
	}
	en.state, en.isReady, en.message = state, ready, msg
}

func (e *Engine) runComponent(ctx context.Context, en *entry) {
	c := en.c
	for _, n := range c.Needs {
		select {
		case <-e.byName[n].ready:
		case <-ctx.Done():
			return
		}
	}
	log := e.log.With("component", c.Name)
	// Init, and the first start, are retried: they fail on what clears up by
	// itself (an apiserver still warming up, a port still held).
	for attempt := 0; ; attempt++ {
		err := e.start(ctx, en)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		en.set(StateFailed, false, err.Error())
		en.mu.Lock()
		en.restarts++
		en.mu.Unlock()
		log.Warn("start failed", "err", err, "attempt", attempt+1)
		if !sleep(ctx, backoff(attempt)) {
			return
		}
	}
	log.Info("started")
	if c.Ready == nil {
		if c.Process == nil && c.Run == nil {
			en.set(StateDone, true, "")
		} else {
			en.set(supervisor.StateRunning, true, "")
		}
		close(en.ready)
		<-ctx.Done()
		return
	}
	e.probe(ctx, en, log)
}

// start runs Init, then starts the process or the in-process Run.
func (e *Engine) start(ctx context.Context, en *entry) error {
	c := en.c
	en.set("starting", false, "")
	if c.Init != nil {
		if err := c.Init(ctx); err != nil {
			return err
		}
	}
	switch {
	case c.Process != nil:
		if c.Process.Log == nil {
			c.Process.Log = e.log
		}
		return c.Process.Start(ctx)
	case c.Run != nil:
		go e.runInProcess(ctx, en)
	}
	return nil
}

// runInProcess keeps an in-process component running until ctx is done.
func (e *Engine) runInProcess(ctx context.Context, en *entry) {
	for attempt := 0; ; attempt++ {
		// Without a readiness check, running is ready.
		en.set(supervisor.StateRunning, en.c.Ready == nil, "")
		err := en.c.Run(ctx)
		if ctx.Err() != nil {
			en.set(supervisor.StateStopped, false, "")
			return
		}
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		e.log.Warn("in-process component failed", "component", en.c.Name, "err", err)
		en.set(StateFailed, false, err.Error())
		en.mu.Lock()
		en.restarts++
		en.mu.Unlock()
		if !sleep(ctx, backoff(attempt)) {
			return
		}
	}
}

// probe checks readiness until ctx is done: every startProbeInterval until
// the first success, then every probeInterval.
func (e *Engine) probe(ctx context.Context, en *entry, log *slog.Logger) {
	first := true
	for {
		interval := probeInterval
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := en.c.Ready(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		state := supervisor.StateRunning
		if en.c.Process == nil && en.c.Run == nil {
			state = StateDone
		}
		if err == nil {
			en.set(state, true, "")
			if first {
				log.Info("ready")
				close(en.ready)
				first = false
			}
		} else {
			en.set(state, false, err.Error())
			if first {
				interval = startProbeInterval
			}
		}
		if !sleep(ctx, interval) {
			return
		}
	}
}

func backoff(attempt int) time.Duration {
	d := 500 * time.Millisecond << min(attempt, 6)
	return d/2 + rand.N(d/2)
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
