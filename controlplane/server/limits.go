package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Limits bound what one tenant, or one of its runners, can make the
// control plane keep or do: no tenant can fill the store or the disk, or
// slow everyone else down. The zero value of a field means its default.
type Limits struct {
	// APITokens is the most API tokens a tenant (or the admin) has (50).
	APITokens int
	// RunnerTokens is the most one-time tokens a tenant has waiting to be
	// redeemed (100).
	RunnerTokens int
	// Artifacts and ArtifactBytes bound a tenant's uploaded artifacts
	// (500; 20 GiB).
	Artifacts     int
	ArtifactBytes int64
	// Deployments is how many finished deployments of an app in an
	// environment are kept, beside the one that runs (50).
	Deployments int
	// RunnerRate is how many requests a second a runner may make through
	// its tunnel, RunnerBurst how many at once (20; 100). A runner makes a
	// heartbeat every 10 s and a few reports per deployment.
	RunnerRate  float64
	RunnerBurst int
	// ArtifactDownloads is how many artifact downloads run at once, all
	// runners together (16): each holds a file open.
	ArtifactDownloads int
	// AuditRecords is how many records each tenant's audit log keeps, and
	// the control plane's own (10,000): the oldest go first.
	AuditRecords int
}

// DefaultLimits are the limits of a control plane started without others.
var DefaultLimits = Limits{APITokens: 50, RunnerTokens: 100, Artifacts: 500, ArtifactBytes: 20 << 30,
	Deployments: 50, RunnerRate: 20, RunnerBurst: 100, ArtifactDownloads: 16, AuditRecords: 10000}

// withDefaults fills in the fields left zero.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	pick := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	pick(&l.APITokens, d.APITokens)
	pick(&l.RunnerTokens, d.RunnerTokens)
	pick(&l.Artifacts, d.Artifacts)
	pick(&l.Deployments, d.Deployments)
	pick(&l.RunnerBurst, d.RunnerBurst)
	pick(&l.ArtifactDownloads, d.ArtifactDownloads)
	pick(&l.AuditRecords, d.AuditRecords)
	if l.ArtifactBytes == 0 {
		l.ArtifactBytes = d.ArtifactBytes
	}
	if l.RunnerRate == 0 {
		l.RunnerRate = d.RunnerRate
	}
	return l
}

func (l Limits) artifactQuota() store.ArtifactQuota {
	return store.ArtifactQuota{Count: l.Artifacts, Bytes: l.ArtifactBytes}
}

// slots bound how many of something run at once.
type slots chan struct{}

// take waits for a slot while ctx lives, and says whether it got one.
func (s slots) take(ctx context.Context) bool {
	select {
	case s <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// give gives a slot back.
func (s slots) give() { <-s }

// runnerLimiter holds a runner to Limits.RunnerRate: past it, its requests
// get 429, and the log says so once a minute with how many were refused.
type runnerLimiter struct {
	lim *rate.Limiter

	mu       sync.Mutex
	refused  int
	lastWarn time.Time
}

func newRunnerLimiter(l Limits) *runnerLimiter {
	return &runnerLimiter{lim: rate.NewLimiter(rate.Limit(l.RunnerRate), l.RunnerBurst)}
}

// wrap refuses the requests over the rate before h sees them.
func (rl *runnerLimiter) wrap(s *Server, runner string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rl.lim.Allow() {
			h.ServeHTTP(w, r)
			return
		}
		rl.mu.Lock()
		rl.refused++
		if time.Since(rl.lastWarn) >= time.Minute {
			s.log.Warn("runner over its request rate; refusing", "runner", runner, "limit", float64(rl.lim.Limit()), "refused", rl.refused)
			rl.lastWarn, rl.refused = time.Now(), 0
		}
		rl.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(1))
		httpjson.Error(w, http.StatusTooManyRequests, fmt.Sprintf("over the rate limit of %g requests a second from one runner", float64(rl.lim.Limit())))
	})
}
