// Package registry is the node-local OCI registry. It runs inside the
// cameleer process (github.com/distribution/distribution/v3 as a library,
// filesystem storage in the data dir), serves the node's containerd as a
// mirror, and receives the images the build controller makes. Built images
// never leave the host.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the only storage driver we use
	"github.com/sirupsen/logrus"
)

// Registry is a running registry.
type Registry struct {
	app    *handlers.App
	server *http.Server
}

// New makes a registry that stores its content under rootDir.
func New(ctx context.Context, rootDir string) (*Registry, error) {
	cfg := &configuration.Configuration{
		Version: configuration.CurrentVersion,
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": rootDir},
			"delete":     configuration.Parameters{"enabled": true},
		},
	}
	cfg.Log.AccessLog.Disabled = true
	cfg.Log.Level = "warn"
	// The library logs every request through logrus' standard logger, which
	// only its own command configures; the registry is its only user here.
	logrus.SetLevel(logrus.WarnLevel)
	app, err := newApp(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	return &Registry{
		app:    app,
		server: &http.Server{Handler: app, ReadHeaderTimeout: 30 * time.Second},
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
			slog.Warn("registry shutdown", "err", err)
		}
	}()
	err := r.server.Serve(l)
	r.app.Shutdown()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve registry: %w", err)
}
