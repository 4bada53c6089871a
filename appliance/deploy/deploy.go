// Package deploy is the runner's side of a deployment: it takes the control
// plane's command, fetches the artifact through the tunnel, builds the app
// image, pushes it to the local registry, rolls it out with the
// orchestrator, and reports each phase back. It also serves the app
// operations (stop, start, restart, logs, status, list) the control plane
// forwards.
package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/egress"
	"github.com/cameleer/cameleer/appliance/imagebuild"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/appliance/tunnelclient"
	"github.com/cameleer/cameleer/internal/atomicfile"
	"github.com/cameleer/cameleer/internal/backoff"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Options is everything a Worker needs.
type Options struct {
	Tenant  string
	Runtime orchestrator.Runtime
	// Registry is where built images are pushed (HOST:PORT, plain HTTP);
	// ImageHost is how the runtime names that registry in image
	// references.
	Registry  string
	ImageHost string
	// Base opens the Java runtime base image; Agent reads the agent JAR.
	Base  func() (v1.Image, error)
	Agent func() ([]byte, error)
	// ControlPlane reaches the control plane through the tunnel.
	ControlPlane *http.Client
	// CacheDir keeps fetched artifacts by SHA-256.
	CacheDir string
	// Layers keeps recent builds' layers: an app's next version with the
	// same dependencies reuses their layer.
	Layers *imagebuild.Cache
	// URL says where an app is routed.
	URL func(orchestrator.App) string
	// Egress keeps the environments' egress applied: each deployment's
	// before its app rolls out, and what the control plane sends.
	Egress *egress.Keeper
	// Replay replays an original the runner keeps (collector.Replay);
	// nil: this runner keeps none.
	Replay func(ctx context.Context, env, app string, r api.RunnerReplay) (api.RunnerReplayed, error)
	// Log is where the worker logs; nil: nowhere.
	Log *slog.Logger
}

// Worker runs deployments for one tenant's runner.
type Worker struct {
	opts Options

	mu   sync.Mutex
	jobs map[string]*job      // by deployment ID
	apps map[string]*appQueue // by ENV/APP
}

// New makes a worker; it runs nothing until it is given deployments. What
// a runner killed while caching an artifact left is removed first.
func New(o Options) *Worker {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.CacheDir != "" {
		if n, err := atomicfile.RemoveTemps(o.CacheDir); err != nil || n > 0 {
			o.Log.Info("artifact cache: removed what an earlier run was writing", "files", n, "err", err)
		}
	}
	return &Worker{opts: o, jobs: map[string]*job{}, apps: map[string]*appQueue{}}
}

// job is one deployment as this runner knows it.
type job struct {
	mu        sync.Mutex
	report    api.DeployReport
	done      time.Time     // when the report became final
	reporting bool          // a goroutine sends the reports
	changed   chan struct{} // signalled when there is a report to send
}

func (j *job) set(r api.DeployReport) {
	j.mu.Lock()
	j.report = r
	if api.Done(r.Phase) {
		j.done = time.Now()
	}
	j.mu.Unlock()
	j.poke()
}

// forgetAfter is how long a finished deployment is remembered: long past
// the last time the control plane could send it again (it stops once it
// has the final report, resending every 30 s until then).
const forgetAfter = 15 * time.Minute

// forget drops finished deployments reported long ago. Callers hold w.mu.
func (w *Worker) forget(now time.Time) {
	for id, j := range w.jobs {
		j.mu.Lock()
		old := !j.done.IsZero() && !j.reporting && now.Sub(j.done) > forgetAfter
		j.mu.Unlock()
		if old {
			delete(w.jobs, id)
		}
	}
}

func (j *job) poke() {
	select {
	case j.changed <- struct{}{}:
	default:
	}
}

func (j *job) get() api.DeployReport {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.report
}

// Accept starts a deployment unless this runner already has it; a
// command the control plane sends again (after either side restarted) only
// makes the runner report where it is. The deployment runs, and reports,
// until ctx is done.
func (w *Worker) Accept(ctx context.Context, d api.Deploy) error {
	if err := api.ValidName(d.App); err != nil {
		return err
	}
	if err := api.ValidName(d.Environment); err != nil {
		return err
	}
	if (d.Artifact == "") == (d.Image == "") {
		return errors.New("a deployment names an artifact or an image, not both")
	}
	if d.Artifact != "" && !validSHA256(d.Artifact) {
		return fmt.Errorf("artifact %q is not a SHA-256", d.Artifact)
	}
	if _, err := api.CheckEgress(d.Egress.Allow); err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forget(time.Now())
	if j, ok := w.jobs[d.ID]; ok {
		w.startReporting(ctx, d.ID, j)
		return nil
	}
	j := &job{report: api.DeployReport{Phase: api.PhaseValidating}, changed: make(chan struct{}, 1)}
	w.jobs[d.ID] = j
	q := w.queueLocked(d.Environment + "/" + d.App)
	// The control plane's IDs sort by creation: the newest deployment of
	// an app is the one to run.
	if d.ID > q.newest {
		q.newest = d.ID
	}
	w.startReporting(ctx, d.ID, j)
	go func() {
		// One deployment of an app at a time; one that waited while a
		// newer one came does not run at all, so an older version never
		// rolls out after a newer one.
		q.run.Lock()
		defer q.run.Unlock()
		w.mu.Lock()
		newest := q.newest
		w.mu.Unlock()
		if newest != d.ID {
			j.set(api.DeployReport{Phase: api.PhaseFailed, Reason: "superseded by deployment " + newest})
			return
		}
		w.run(ctx, d, j)
	}()
	return nil
}

// queue is the app's queue, made on first use.
func (w *Worker) queue(key string) *appQueue {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queueLocked(key)
}

// queueLocked is queue for callers that hold w.mu.
func (w *Worker) queueLocked(key string) *appQueue {
	q := w.apps[key]
	if q == nil {
		q = &appQueue{}
		w.apps[key] = q
	}
	return q
}

// appQueue orders an app's deployments and operations.
type appQueue struct {
	run    sync.Mutex
	newest string // guarded by Worker.mu
}

// Report is where a deployment this runner knows is.
func (w *Worker) Report(id string) (api.DeployReport, bool) {
	w.mu.Lock()
	j, ok := w.jobs[id]
	w.mu.Unlock()
	if !ok {
		return api.DeployReport{}, false
	}
	return j.get(), true
}

// startReporting makes sure a goroutine sends j's reports, and has it send
// the current one. Callers hold w.mu.
func (w *Worker) startReporting(ctx context.Context, id string, j *job) {
	j.mu.Lock()
	defer j.mu.Unlock()
	// Poked under the lock, so a reporter about to stop sees it.
	j.poke()
	if !j.reporting {
		j.reporting = true
		go w.reportUntilDone(ctx, id, j)
	}
}

// redact replaces the values of secrets in s.
func redact(s string, secrets map[string]string) string {
	for name, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "[secret "+name+"]")
		}
	}
	return s
}

func validSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

func (w *Worker) run(ctx context.Context, d api.Deploy, j *job) {
	log := w.opts.Log.With("deployment", d.ID, "app", d.App, "environment", d.Environment)
	a := orchestrator.App{Tenant: w.opts.Tenant, Environment: d.Environment, Name: d.App, Image: d.Image,
		Replicas: max(d.Replicas, 1), Port: d.Port, Env: d.Env, Secrets: d.Secrets}
	if a.Port == 0 {
		a.Port = api.DefaultAppPort
	}
	fail := func(phase api.Phase, err error) {
		// The app's last output may print a secret's value.
		reason := redact(string(phase)+": "+err.Error(), d.Secrets)
		log.Warn("deployment failed", "reason", reason)
		j.set(api.DeployReport{Phase: api.PhaseFailed, Reason: reason, Image: a.Image})
	}
	if d.Artifact != "" {
		j.set(api.DeployReport{Phase: api.PhaseBuilding})
		img, err := w.build(ctx, d)
		if err != nil {
			fail(api.PhaseBuilding, err)
			return
		}
		j.set(api.DeployReport{Phase: api.PhasePushing})
		a.Image, err = w.push(ctx, d, img)
		if err != nil {
			fail(api.PhasePushing, err)
			return
		}
	}
	j.set(api.DeployReport{Phase: api.PhaseRollingOut, Image: a.Image})
	if err := w.opts.Egress.Set(ctx, d.Environment, d.Egress); err != nil {
		fail(api.PhaseRollingOut, err)
		return
	}
	start := time.Now()
	if err := w.opts.Runtime.Deploy(ctx, a); err != nil {
		fail(api.PhaseRollingOut, err)
		return
	}
	log.Info("deployment running", "image", a.Image, "rollout", time.Since(start).Round(time.Millisecond))
	j.set(api.DeployReport{Phase: api.PhaseRunning, Image: a.Image, URL: w.opts.URL(a)})
}

// build fetches the artifact (unless cached) and builds the app image.
func (w *Worker) build(ctx context.Context, d api.Deploy) (v1.Image, error) {
	jar, err := w.artifact(ctx, d.Artifact)
	if err != nil {
		return nil, err
	}
	base, err := w.opts.Base()
	if err != nil {
		return nil, fmt.Errorf("open the Java base image: %w", err)
	}
	agent, err := w.opts.Agent()
	if err != nil {
		return nil, fmt.Errorf("read the agent: %w", err)
	}
	res, err := imagebuild.Image(imagebuild.Input{Base: base, Agent: agent, App: jar, Cache: w.opts.Layers, Labels: map[string]string{
		"io.cameleer.app": d.App, "io.cameleer.artifact": d.Artifact,
	}})
	if err != nil {
		return nil, err
	}
	return res.Image, nil
}

// artifact returns the JAR with the given SHA-256, from the cache or
// through the tunnel; what it fetched must hash to that SHA-256. A fetch
// that breaks (the tunnel or the control plane restarting) is tried again
// until ctx ends; only the control plane's refusal is final.
func (w *Worker) artifact(ctx context.Context, sha string) ([]byte, error) {
	path := filepath.Join(w.opts.CacheDir, sha+".jar")
	if b, err := os.ReadFile(path); err == nil && hexSHA(b) == sha {
		return b, nil
	}
	retry := backoff.New(200*time.Millisecond, 10*time.Second)
	for {
		b, final, err := w.fetch(ctx, sha)
		if err == nil {
			w.cache(path, b)
			return b, nil
		}
		if final || ctx.Err() != nil {
			return nil, err
		}
		w.opts.Log.Info("fetching the artifact failed; trying again", "artifact", sha, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(retry.Next()):
		}
	}
}

// fetch gets an artifact from the control plane; final says a failure will
// not go away by trying again.
func (w *Worker) fetch(ctx context.Context, sha string) (b []byte, final bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://controlplane"+api.ArtifactPath+sha, nil)
	if err != nil {
		return nil, true, err
	}
	resp, err := w.opts.ControlPlane.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("fetch the artifact: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return nil, resp.StatusCode/100 == 4, fmt.Errorf("fetch the artifact: %s: %s", resp.Status, httpjson.ErrorText(msg))
	}
	b, err = io.ReadAll(resp.Body)
	if err != nil {
		return nil, false, fmt.Errorf("fetch the artifact: %w", err)
	}
	if got := hexSHA(b); got != sha {
		return nil, false, fmt.Errorf("fetch the artifact: got bytes with SHA-256 %s", got)
	}
	return b, false, nil
}

// cache keeps an artifact for the next build, if it can; atomicfile writes
// it under a name of its own first, so concurrent fetches and a crash leave
// no partial file under the artifact's name.
func (w *Worker) cache(path string, b []byte) {
	if err := os.MkdirAll(w.opts.CacheDir, 0o700); err != nil {
		return
	}
	if _, err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		w.opts.Log.Debug("cache artifact", "err", err)
	}
	w.pruneCache()
}

// keepArtifacts is how many artifacts the cache keeps, the most recently
// fetched.
const keepArtifacts = 20

func (w *Worker) pruneCache() {
	files, err := filepath.Glob(filepath.Join(w.opts.CacheDir, "*.jar"))
	if err != nil || len(files) <= keepArtifacts {
		return
	}
	mtime := func(p string) time.Time {
		fi, err := os.Stat(p)
		if err != nil {
			return time.Time{}
		}
		return fi.ModTime()
	}
	slices.SortFunc(files, func(a, b string) int { return mtime(b).Compare(mtime(a)) })
	for _, p := range files[keepArtifacts:] {
		os.Remove(p)
	}
}

func hexSHA(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// push writes the image to the local registry, tagged with the deployment
// (so the registry keeps it), and returns its reference by digest.
func (w *Worker) push(ctx context.Context, d api.Deploy, img v1.Image) (string, error) {
	repo := w.opts.Tenant + "/" + d.App
	ref, err := name.ParseReference(w.opts.Registry+"/"+repo+":"+d.ID, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("push to %s: %w", w.opts.Registry, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	return w.opts.ImageHost + "/" + repo + "@" + digest.String(), nil
}

// reportUntilDone sends the job's latest report to the control plane each
// time it changes, retrying with backoff while the control plane cannot be
// reached, until a final report was taken.
func (w *Worker) reportUntilDone(ctx context.Context, id string, j *job) {
	retry := backoff.New(200*time.Millisecond, 10*time.Second)
	for {
		select {
		case <-j.changed:
		case <-ctx.Done():
			return
		}
		r := j.get()
		if err := w.send(ctx, id, r); err != nil {
			var refused *httpjson.StatusError
			if errors.As(err, &refused) && refused.Status/100 == 4 {
				// The control plane does not know the deployment (any
				// more): no report will change that.
				w.opts.Log.Warn("deployment report refused", "deployment", id, "err", err)
				j.mu.Lock()
				j.reporting = false
				j.mu.Unlock()
				return
			}
			w.opts.Log.Debug("report deployment", "deployment", id, "err", err)
			j.poke() // try again
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry.Next()):
			}
			continue
		}
		retry.Reset()
		j.mu.Lock()
		if api.Done(r.Phase) && j.report == r && len(j.changed) == 0 {
			j.reporting = false
			j.mu.Unlock()
			return
		}
		j.mu.Unlock()
	}
}

func (w *Worker) send(ctx context.Context, id string, r api.DeployReport) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return tunnelclient.Post(ctx, w.opts.ControlPlane, api.DeployReportPath+id, r, nil)
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}
