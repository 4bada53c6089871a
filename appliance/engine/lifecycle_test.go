package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cameleer/cameleer/appliance/supervisor"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder notes the order things happen in.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *recorder) index(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Index(r.events, s)
}

// matching lists the events that start with prefix, in order.
func (r *recorder) matching(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// fake is a component that records its lifecycle calls and does what the
// test tells it.
type fake struct {
	name  string
	rec   *recorder
	start func(ctx context.Context) error // nil: starts at once
	ready func() error                    // nil: ready once started

	mu      sync.Mutex
	starts  int
	stopped bool
}

func newFake(rec *recorder, name string, needs ...*Component) (*fake, *Component) {
	f := &fake{name: name, rec: rec}
	return f, &Component{Name: name, Needs: needs, Lifecycle: f}
}

func (f *fake) Start(ctx context.Context) error {
	f.mu.Lock()
	f.starts++
	f.mu.Unlock()
	f.rec.add("start " + f.name)
	if f.start == nil {
		return nil
	}
	return f.start(ctx)
}

func (f *fake) Ready(context.Context) error {
	if f.ready == nil {
		return nil
	}
	return f.ready()
}

func (f *fake) Status() Activity {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return Activity{State: supervisor.StateStopped}
	}
	return Activity{State: supervisor.StateRunning, PID: 42}
}

func (f *fake) Stop() error {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.rec.add("stop " + f.name)
	return nil
}

// readyAfter is a readiness check that fails, saying why, until gate is
// closed.
func readyAfter(gate <-chan struct{}, why string) func() error {
	return func() error {
		select {
		case <-gate:
			return nil
		default:
			return errors.New(why)
		}
	}
}

func (f *fake) startCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts
}

// newEngine is an engine whose failed starts are retried within milliseconds.
func newEngine(t *testing.T, components ...*Component) *Engine {
	t.Helper()
	e, err := New(quiet, components)
	if err != nil {
		t.Fatal(err)
	}
	e.minBackoff, e.maxBackoff = time.Millisecond, 10*time.Millisecond
	return e
}

// start runs e until the returned stop is called; stop returns once Run did.
func start(t *testing.T, e *Engine) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// eventually polls cond until it holds; the deadline only bounds a failing
// test, it asserts nothing about speed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

func status(e *Engine, name string) ComponentStatus {
	for _, s := range e.Status(context.Background()) {
		if s.Name == name {
			return s
		}
	}
	panic("no component " + name)
}

func TestEngineStartsInDependencyOrderAndRetries(t *testing.T) {
	var rec recorder
	flaky := 0
	ranAlready := func(name string) func(context.Context) error {
		return func(context.Context) error {
			if rec.index("run "+name) < 0 {
				return errors.New("not yet")
			}
			return nil
		}
	}
	run := func(name string) func(context.Context) error {
		return func(ctx context.Context) error {
			rec.add("run " + name)
			<-ctx.Done()
			rec.add("stop " + name)
			return nil
		}
	}
	db := &Component{Name: "db", Lifecycle: &InProcess{Run: run("db"), Check: ranAlready("db"), Log: quiet}}
	api := &Component{Name: "api", Needs: []*Component{db}, Lifecycle: &InProcess{Run: run("api"), Check: ranAlready("api"), Log: quiet}}
	task := &Component{Name: "task", Needs: []*Component{api}, Lifecycle: &Task{Do: func(context.Context) error {
		flaky++
		if flaky < 3 {
			return errors.New("apiserver warming up")
		}
		rec.add("task")
		return nil
	}}}
	e, err := New(quiet, []*Component{db, api, task})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	waitCtx, waitCancel := context.WithTimeout(context.Background(), time.Minute)
	defer waitCancel()
	if err := e.AllReady(waitCtx); err != nil {
		t.Fatal(err)
	}
	if !(rec.index("run db") < rec.index("run api") && rec.index("run api") < rec.index("task")) {
		t.Errorf("start order: %v", rec.events)
	}
	if flaky != 3 {
		t.Errorf("task Init ran %d times, want 3 (two failures, one success)", flaky)
	}
	st := e.Status(context.Background())
	for _, s := range st {
		if !s.Ready {
			t.Errorf("%s not ready: %+v", s.Name, s)
		}
	}
	if st[2].State != StateDone || st[2].Restarts != 2 {
		t.Errorf("task status %+v, want done after 2 failures", st[2])
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestEngineRejectsBadOrder(t *testing.T) {
	db := &Component{Name: "db", Lifecycle: &Task{}}
	api := &Component{Name: "api", Needs: []*Component{db}, Lifecycle: &Task{}}
	_, err := New(quiet, []*Component{api, db})
	if err == nil {
		t.Fatal("a component needing a later one was accepted")
	}
	if !strings.Contains(err.Error(), "api needs db, which is not listed before it") {
		t.Errorf("error %q does not say which component needs which", err)
	}
	if _, err := New(quiet, []*Component{{Name: "a", Lifecycle: &Task{}}, {Name: "a", Lifecycle: &Task{}}}); err == nil {
		t.Fatal("a duplicate component was accepted")
	}
	if _, err := New(quiet, []*Component{api}); err == nil {
		t.Fatal("a component needing one that is not listed was accepted")
	}
	if _, err := New(quiet, []*Component{{Name: "a", Needs: []*Component{nil}, Lifecycle: &Task{}}}); err == nil {
		t.Fatal("a component needing nil was accepted")
	}
	if _, err := New(quiet, []*Component{{Name: "a"}}); err == nil {
		t.Fatal("a component without a lifecycle was accepted")
	}
	if _, err := New(quiet, []*Component{db, api}); err != nil {
		t.Fatal(err)
	}
}

func TestEngineRestartsCrashedInProcessComponent(t *testing.T) {
	runs := 0
	var mu sync.Mutex
	comp := &Component{Name: "reg", Lifecycle: &InProcess{Log: quiet, Run: func(ctx context.Context) error {
		mu.Lock()
		runs++
		n := runs
		mu.Unlock()
		if n == 1 {
			return errors.New("crash")
		}
		<-ctx.Done()
		return nil
	}}}
	e, err := New(quiet, []*Component{comp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		n := runs
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("crashed component was not run again")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := e.Status(context.Background())[0]; st.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", st.Restarts)
	}
	cancel()
	<-done
}

// A component goes waiting -> starting -> failed -> starting -> started
// (then shows its own state) -> ready, and stopped at the end.
func TestLifecycleStates(t *testing.T) {
	var rec recorder
	depReady := make(chan struct{})
	dep, depC := newFake(&rec, "dep")
	dep.ready = readyAfter(depReady, "warming up")
	starts := make(chan error)
	comp, compC := newFake(&rec, "comp", depC)
	comp.start = func(ctx context.Context) error {
		select {
		case err := <-starts:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e := newEngine(t, depC, compC)
	stop := start(t, e)

	eventually(t, "dep started", func() bool { return status(e, "dep").State == supervisor.StateRunning })
	if st := status(e, "dep"); st.Ready || st.Message != "warming up" || st.PID != 42 {
		t.Errorf("dep before it is ready: %+v", st)
	}
	if st := status(e, "comp"); st.State != StateWaiting || st.Ready || !st.Since.IsZero() {
		t.Errorf("comp while dep is not ready: %+v", st)
	}

	close(depReady)
	eventually(t, "comp starting", func() bool { return status(e, "comp").State == StateStarting })
	starts <- errors.New("port still held")
	eventually(t, "comp starting again", func() bool {
		return comp.startCount() == 2 && status(e, "comp").State == StateStarting
	})
	starts <- nil
	eventually(t, "comp ready", func() bool { return status(e, "comp").Ready })
	if st := status(e, "comp"); st.State != supervisor.StateRunning || st.PID != 42 || st.Restarts != 1 || st.Message != "" {
		t.Errorf("comp once ready: %+v", st)
	}
	if err := e.AllReady(context.Background()); err != nil {
		t.Fatal(err)
	}

	stop()
	for _, name := range []string{"dep", "comp"} {
		if st := status(e, name); st.State != supervisor.StateStopped || st.Ready {
			t.Errorf("%s after the engine stopped: %+v", name, st)
		}
	}
}

// A failed Start shows as failed, saying why, until the backoff is over; a
// stop does not wait for it.
func TestFailedStartWaitsForBackoff(t *testing.T) {
	var rec recorder
	comp, c := newFake(&rec, "comp")
	comp.start = func(context.Context) error { return errors.New("port still held") }
	e := newEngine(t, c)
	e.minBackoff, e.maxBackoff = time.Hour, time.Hour
	stop := start(t, e)
	eventually(t, "comp failed", func() bool { return status(e, "comp").State == StateFailed })
	if st := status(e, "comp"); st.Ready || st.Message != "port still held" || st.Restarts != 1 || st.Since.IsZero() {
		t.Errorf("comp after a failed start: %+v", st)
	}
	stop()
	if comp.startCount() != 1 {
		t.Errorf("started %d times, want once: the backoff is an hour", comp.startCount())
	}
	if got := rec.matching("stop "); !slices.Equal(got, []string{"stop comp"}) {
		t.Errorf("stops %v", got)
	}
}

// Each component starts as soon as what it needs is ready, whatever comes
// before it in the list.
func TestStartsAsSoonAsNeedsAreReady(t *testing.T) {
	var rec recorder
	gate := make(chan struct{})
	_, a := newFake(&rec, "a")
	slow, slowC := newFake(&rec, "slow", a)
	slow.ready = readyAfter(gate, "not yet")
	_, b := newFake(&rec, "b", a)
	last, lastC := newFake(&rec, "last", slowC, b)
	e := newEngine(t, a, slowC, b, lastC)
	stop := start(t, e)
	defer stop()

	eventually(t, "b ready", func() bool { return status(e, "b").Ready })
	if last.startCount() != 0 {
		t.Fatal("last started before slow, which it needs, was ready")
	}
	close(gate)
	if err := e.AllReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !(rec.index("start a") < rec.index("start slow") && rec.index("start a") < rec.index("start b") &&
		rec.index("start slow") < rec.index("start last") && rec.index("start b") < rec.index("start last")) {
		t.Errorf("start order: %v", rec.events)
	}
}

// A component whose dependency never gets ready never starts, the engine is
// never all ready, and both are still stopped, in reverse order.
func TestDependencyNeverReady(t *testing.T) {
	var rec recorder
	dep, depC := newFake(&rec, "dep")
	dep.ready = func() error { return errors.New("never") }
	comp, compC := newFake(&rec, "comp", depC)
	e := newEngine(t, depC, compC)
	stop := start(t, e)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.AllReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AllReady = %v, want the deadline", err)
	}
	if st := status(e, "comp"); st.State != StateWaiting || st.Ready {
		t.Errorf("comp: %+v, want waiting", st)
	}
	if st := status(e, "dep"); st.Ready || st.Message != "never" {
		t.Errorf("dep: %+v, want not ready, saying why", st)
	}
	stop()
	if comp.startCount() != 0 {
		t.Error("comp was started though what it needs never got ready")
	}
	if got, want := rec.matching("stop "), []string{"stop comp", "stop dep"}; !slices.Equal(got, want) {
		t.Errorf("stops %v, want %v", got, want)
	}
}

// An in-process component that crashes is run again, after waits that grow,
// shows as failed while it waits, and a stop during the wait ends it at once.
func TestInProcessRestartsWithBackoff(t *testing.T) {
	t.Run("waits grow", func(t *testing.T) {
		const minWait = 40 * time.Millisecond
		var mu sync.Mutex
		var runs []time.Time
		c := &Component{Name: "srv", Lifecycle: &InProcess{Log: quiet, MinBackoff: minWait, MaxBackoff: time.Second,
			Run: func(ctx context.Context) error {
				mu.Lock()
				runs = append(runs, time.Now())
				n := len(runs)
				mu.Unlock()
				if n <= 3 {
					return errors.New("crash")
				}
				<-ctx.Done()
				return nil
			}}}
		e := newEngine(t, c)
		stop := start(t, e)
		defer stop()
		eventually(t, "three restarts", func() bool {
			st := status(e, "srv")
			return st.Restarts == 3 && st.State == supervisor.StateRunning
		})
		mu.Lock()
		defer mu.Unlock()
		// Each wait is at least half its full length (the jitter), and the
		// full length doubles: 40, 80, 160 ms.
		for i, full := range []time.Duration{minWait, 2 * minWait, 4 * minWait} {
			if gap := runs[i+1].Sub(runs[i]); gap < full/2 {
				t.Errorf("wait %d was %v, want at least %v", i+1, gap, full/2)
			}
		}
	})
	t.Run("failed while waiting", func(t *testing.T) {
		var rec recorder
		c := &Component{Name: "srv", Lifecycle: &InProcess{Log: quiet, MinBackoff: time.Hour, MaxBackoff: time.Hour,
			Run: func(ctx context.Context) error {
				rec.add("run")
				return errors.New("crash")
			}}}
		e := newEngine(t, c)
		stop := start(t, e)
		eventually(t, "srv failed", func() bool { return status(e, "srv").State == StateFailed })
		if st := status(e, "srv"); st.Restarts != 1 {
			t.Errorf("status %+v, want 1 restart", st)
		}
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Fatal("stop waited for the backoff")
		}
		if st := status(e, "srv"); st.State != supervisor.StateStopped {
			t.Errorf("status after stop %+v", st)
		}
		if got := rec.matching("run"); len(got) != 1 {
			t.Errorf("ran %d times, want once", len(got))
		}
	})
}

// Stop comes after every Start returned, once for every component, in the
// reverse order of the list; an in-process component's run ends in its turn.
func TestStopsInReverseOrder(t *testing.T) {
	var rec recorder
	_, a := newFake(&rec, "a")
	srv := &Component{Name: "srv", Needs: []*Component{a}, Lifecycle: &InProcess{Log: quiet, Run: func(ctx context.Context) error {
		<-ctx.Done()
		rec.add("stop srv")
		return nil
	}}}
	_, b := newFake(&rec, "b", srv)
	stuck, stuckC := newFake(&rec, "stuck", b)
	stuck.start = func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // a start that takes a while to give up
		rec.add("start stuck returned")
		return ctx.Err()
	}
	never, neverC := newFake(&rec, "never", stuckC)
	e := newEngine(t, a, srv, b, stuckC, neverC)
	stop := start(t, e)
	eventually(t, "stuck starting", func() bool { return status(e, "stuck").State == StateStarting })
	stop()

	want := []string{"stop never", "stop stuck", "stop b", "stop srv", "stop a"}
	if got := rec.matching("stop "); !slices.Equal(got, want) {
		t.Errorf("stops %v, want %v", got, want)
	}
	if rec.index("start stuck returned") > rec.index("stop never") {
		t.Errorf("a component was stopped before every Start returned: %v", rec.events)
	}
	if never.startCount() != 0 {
		t.Error("never was started")
	}
}
