package registry

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
)

// distribution logs through logrus' standard logger: its dcontext, which
// would take a logger per context, is internal. So logrus' standard logger
// writes nothing, and a hook forwards what the library logs to the slog
// logger of the registry made last (a process runs one).
var (
	forwardTo   atomic.Pointer[slog.Logger]
	installHook = sync.OnceFunc(func() {
		std := logrus.StandardLogger()
		std.SetOutput(io.Discard)
		// Below warn the library logs every request it answers.
		std.SetLevel(logrus.WarnLevel)
		std.AddHook(hook{})
	})
)

// forwardLogs sends distribution's log to log from now on.
func forwardLogs(log *slog.Logger) {
	forwardTo.Store(log)
	installHook()
}

// hook forwards logrus entries to slog.
type hook struct{}

func (hook) Levels() []logrus.Level { return logrus.AllLevels }

func (hook) Fire(e *logrus.Entry) error {
	log := forwardTo.Load()
	level := slogLevel(e)
	ctx := context.Background()
	if log == nil || !log.Enabled(ctx, level) {
		return nil
	}
	r := slog.NewRecord(e.Time, level, e.Message, 0)
	for _, k := range slices.Sorted(maps.Keys(e.Data)) {
		if k != "go.version" { // the same on every line
			r.AddAttrs(slog.Any(k, e.Data[k]))
		}
	}
	return log.Handler().Handle(ctx, r)
}

// slogLevel is e's level in slog. A 404 to a HEAD or GET is the answer to
// "is this blob (or manifest) here yet?", asked before every push and pull:
// not an error.
func slogLevel(e *logrus.Entry) slog.Level {
	switch {
	case e.Level <= logrus.ErrorLevel:
		m := e.Data["http.request.method"]
		if e.Data["http.response.status"] == http.StatusNotFound && (m == http.MethodHead || m == http.MethodGet) {
			return slog.LevelDebug
		}
		return slog.LevelError
	case e.Level == logrus.WarnLevel:
		return slog.LevelWarn
	case e.Level == logrus.InfoLevel:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
