package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the supervised child: with CHILD_MODE set it
// behaves as the mode says instead of running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("CHILD_MODE") {
	case "":
		os.Exit(m.Run())
	case "sleep":
		fmt.Println("child up")
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		<-c
		fmt.Println("child got SIGTERM")
		os.Exit(0)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("child up")
		time.Sleep(time.Hour)
	case "crash":
		fmt.Println("child crashing")
		os.Exit(3)
	}
}

func newProcess(t *testing.T, mode string) *Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &Process{
		Name:        "child",
		Path:        exe,
		Env:         []string{"CHILD_MODE=" + mode},
		RunDir:      filepath.Join(dir, "run"),
		LogDir:      filepath.Join(dir, "log"),
		StopTimeout: 2 * time.Second,
		MinBackoff:  10 * time.Millisecond,
		MaxBackoff:  50 * time.Millisecond,
		Log:         slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	t.Cleanup(func() { p.Stop() })
	return p
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// eventually polls cond until it holds; the deadline only bounds a failing
// test, it asserts nothing about speed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

func logContains(p *Process, s string) bool {
	b, _ := os.ReadFile(p.LogPath())
	return strings.Contains(string(b), s)
}

func TestStartStop(t *testing.T) {
	p := newProcess(t, "sleep")
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := p.Status()
	if st.State != StateRunning || st.PID == 0 {
		t.Fatalf("status = %+v", st)
	}
	pidFile, err := os.ReadFile(p.pidPath())
	if err != nil || strings.TrimSpace(string(pidFile)) != strconv.Itoa(st.PID) {
		t.Fatalf("pid file %q, %v", pidFile, err)
	}
	eventually(t, "child logs", func() bool { return logContains(p, "child up") })
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if alive(st.PID) {
		t.Fatal("child still alive after Stop")
	}
	if !logContains(p, "child got SIGTERM") {
		t.Fatal("child was not stopped with SIGTERM")
	}
	if _, err := os.Stat(p.pidPath()); !os.IsNotExist(err) {
		t.Fatal("pid file left behind")
	}
	if st := p.Status(); st.State != StateStopped || st.PID != 0 {
		t.Fatalf("status after stop = %+v", st)
	}
	p.Stop() // idempotent
}

func TestStopBeforeStart(t *testing.T) {
	if err := newProcess(t, "sleep").Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestStartMissingBinary(t *testing.T) {
	p := newProcess(t, "sleep")
	p.Path = "/nonexistent/binary"
	err := p.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "child") {
		t.Fatalf("err = %v", err)
	}
}

func TestRestartsAfterCrash(t *testing.T) {
	p := newProcess(t, "crash")
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "three restarts", func() bool { return p.Status().Restarts >= 3 })
	if st := p.Status(); !strings.Contains(st.LastExit, "exit status 3") {
		t.Fatalf("last exit = %q", st.LastExit)
	}
}

func TestRestartsAfterKill(t *testing.T) {
	p := newProcess(t, "sleep")
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := p.Status().PID
	syscall.Kill(first, syscall.SIGKILL)
	eventually(t, "a new child", func() bool {
		st := p.Status()
		return st.State == StateRunning && st.PID != first && st.Restarts == 1
	})
	if !strings.Contains(p.Status().LastExit, "killed") {
		t.Fatalf("last exit = %q", p.Status().LastExit)
	}
}

func TestStopKillsChildIgnoringSIGTERM(t *testing.T) {
	p := newProcess(t, "ignore-term")
	p.StopTimeout = 200 * time.Millisecond
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid := p.Status().PID
	eventually(t, "child up", func() bool { return logContains(p, "child up") })
	p.Stop()
	if alive(pid) {
		t.Fatal("child survived Stop")
	}
}

// A supervisor that was killed leaves its child running; the next one kills
// it before starting a new one, but leaves alone a process that merely reuses
// the pid in the pid file.
func TestKillsOwnStaleChildOnly(t *testing.T) {
	p := newProcess(t, "sleep")
	p.setDefaults()
	os.MkdirAll(p.RunDir, 0o755)

	stale := exec.Command(p.Path)
	stale.Env = append(os.Environ(), "CHILD_MODE=sleep", markerEnv+"="+p.marker())
	if err := stale.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { stale.Wait(); close(exited) }()
	os.WriteFile(p.pidPath(), []byte(strconv.Itoa(stale.Process.Pid)), 0o644)

	stranger := exec.Command(p.Path)
	stranger.Env = append(os.Environ(), "CHILD_MODE=sleep")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stranger.Process.Kill(); stranger.Wait() })

	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("stale child was not killed")
	}
	p.Stop()

	os.WriteFile(p.pidPath(), []byte(strconv.Itoa(stranger.Process.Pid)), 0o644)
	q := newProcess(t, "sleep")
	q.RunDir, q.LogDir = p.RunDir, p.LogDir
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	q.Stop()
	if !alive(stranger.Process.Pid) {
		t.Fatal("a process that is not ours was killed")
	}
}

func TestBackoffIsBoundedAndJittered(t *testing.T) {
	p := &Process{MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}
	seen := map[time.Duration]bool{}
	retry := p.backoff()
	for n := 0; n < 50; n++ {
		d := retry.Next()
		want := min(p.MinBackoff<<min(n, 30), p.MaxBackoff)
		if d < want/2 || d > want {
			t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatal("backoff is not jittered")
	}
}

func TestRotatingFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "x.log")
	r, err := openRotating(name, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		fmt.Fprintf(r, "line %d\n", i)
	}
	r.Close()
	cur, _ := os.ReadFile(name)
	one, _ := os.ReadFile(name + ".1")
	two, _ := os.ReadFile(name + ".2")
	if string(cur) != "line 4\n" || string(one) != "line 3\n" || string(two) != "line 2\n" {
		t.Fatalf("files: %q %q %q", cur, one, two)
	}
	if _, err := os.Stat(name + ".3"); !os.IsNotExist(err) {
		t.Fatal("kept more than 2 old files")
	}
}
