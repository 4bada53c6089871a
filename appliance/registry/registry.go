// Package registry is the node-local OCI registry. It runs inside the
// cameleer process (github.com/distribution/distribution/v3 as a library,
// filesystem storage in the data dir, its logs through slog), is seeded
// with the payload's images, serves the node's containerd (or the Docker
// Engine) as a mirror, and receives the app images the runner builds
// (appliance/deploy with appliance/imagebuild). Built images never leave the
// host.
package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the only storage driver we use
)

// Registry is a running registry.
type Registry struct {
	app    *handlers.App
	server *http.Server
	log    *slog.Logger
}

// Options say where a registry keeps its content and what it logs to.
type Options struct {
	// Root is the directory the registry stores its content under.
	Root string
	// Log gets the registry's log; nil: nowhere.
	Log *slog.Logger
}

// New makes a registry.
func New(ctx context.Context, o Options) (*Registry, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	cfg := &configuration.Configuration{
		Version: configuration.CurrentVersion,
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": o.Root},
			"delete":     configuration.Parameters{"enabled": true},
		},
	}
	cfg.Log.AccessLog.Disabled = true
	// The secret signs upload state between requests. Without one the
	// library makes one as this does, and warns about registries behind a
	// load balancer, which this one never is.
	cfg.HTTP.Secret = rand.Text()
	cfg.Log.Level = "warn"
	forwardLogs(o.Log)
	app, err := newApp(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	return &Registry{
		app:    app,
		server: &http.Server{Handler: app, ReadHeaderTimeout: 30 * time.Second},
		log:    o.Log,
	}, nil
}

// newApp turns the library's panic on a bad storage configuration into an
// error.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// Serve answers registry requests on l until ctx is done.
func (r *Registry) Serve(ctx context.Context, l net.Listener) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.server.Shutdown(shutdownCtx); err != nil {
			r.log.Warn("registry shutdown", "err", err)
		}
	}()
	err := r.server.Serve(l)
	r.app.Shutdown()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve registry: %w", err)
}
