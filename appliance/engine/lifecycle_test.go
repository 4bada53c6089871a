package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
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
	comps := []*Component{
		{Name: "db", Run: run("db"), Ready: ranAlready("db")},
		{Name: "api", Needs: []string{"db"}, Run: run("api"), Ready: ranAlready("api")},
		{Name: "task", Needs: []string{"api"}, Init: func(context.Context) error {
			flaky++
			if flaky < 3 {
				return errors.New("apiserver warming up")
			}
			rec.add("task")
			return nil
		}},
	}
	e, err := New(quiet, comps)
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
	_, err := New(quiet, []*Component{{Name: "api", Needs: []string{"db"}}, {Name: "db"}})
	if err == nil {
		t.Fatal("a component needing a later one was accepted")
	}
	if _, err := New(quiet, []*Component{{Name: "a"}, {Name: "a"}}); err == nil {
		t.Fatal("a duplicate component was accepted")
	}
}

func TestEngineRestartsCrashedInProcessComponent(t *testing.T) {
	runs := 0
	var mu sync.Mutex
	comp := &Component{Name: "reg", Run: func(ctx context.Context) error {
		mu.Lock()
		runs++
		n := runs
		mu.Unlock()
		if n == 1 {
			return errors.New("crash")
		}
		<-ctx.Done()
		return nil
	}}
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
