package testutil

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/cameleer/cameleer/tunnel"
)

// Tunnel connects the runner's side of a tunnel to the control plane's
// over loopback TCP, both logging to log; both are closed when the test
// ends.
func Tunnel(t testing.TB, log *slog.Logger) (runner, controlPlane *tunnel.Session) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := l.Accept(); acc <- c }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	controlPlane = tunnel.Server(<-acc, log)
	runner = tunnel.Client(c, log)
	t.Cleanup(func() { runner.Close(); controlPlane.Close() })
	return runner, controlPlane
}

// Logs keeps the messages logged through it (a slog.Handler), for a test
// to count.
type Logs struct {
	mu   sync.Mutex
	msgs []logged
}

type logged struct {
	level slog.Level
	msg   string
}

// Logger logs to l.
func (l *Logs) Logger() *slog.Logger { return slog.New(l) }

// Count is how many messages logged at level or above contain s.
func (l *Logs) Count(level slog.Level, s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m.level >= level && strings.Contains(m.msg, s) {
			n++
		}
	}
	return n
}

func (l *Logs) Enabled(context.Context, slog.Level) bool { return true }

func (l *Logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, logged{r.Level, r.Message})
	return nil
}

func (l *Logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *Logs) WithGroup(string) slog.Handler      { return l }
