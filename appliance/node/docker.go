package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/orchestrator/docker"
)

// DockerOptions configure a runner that runs apps on a host's Docker
// Engine instead of the embedded Kubernetes.
type DockerOptions struct {
	// Socket is the Docker Engine's API socket; empty: /var/run/docker.sock.
	Socket string
	// HTTPPort is where Traefik serves the apps; 0: config.DefaultHTTPPort.
	HTTPPort int
	// AppsDomain is the DNS suffix apps are routed under; empty:
	// config.DefaultAppsDomain.
	AppsDomain string
}

// runDocker runs the runner without the engine, its apps on the host's
// Docker Engine at socket: the registry (for the images it builds and for
// Traefik's), the tunnel, the local API and the deploy worker, until ctx is
// done.
func runDocker(ctx context.Context, log *slog.Logger, c config.Config, socket string) error {
	unlock, err := lockRun(c)
	if err != nil {
		return err
	}
	defer unlock()
	p, _, err := extract(ctx, c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	regErr := make(chan error, 1)
	go func() { regErr <- p.RunRegistry(ctx, log.With("component", "registry")) }()
	if err := waitRegistry(ctx, p.RegistryAddr(), regErr); err != nil {
		return err
	}
	traefik := filepath.Join(p.Payload, "images", "traefik.tar")
	if err := p.PushImages(ctx, log, []string{traefik}); err != nil {
		return err
	}
	ref, ok := p.Images["traefik"]
	if !ok {
		return fmt.Errorf("the payload has no traefik image")
	}
	d := &docker.Orchestrator{Socket: socket, AppsDomain: c.AppsDomain, HTTPPort: c.HTTPPort,
		TraefikImage: strings.Replace(ref, config.RegistryHost, p.RegistryAddr(), 1), Log: log.With("component", "docker")}
	log.Info("running apps on Docker", "socket", socket, "dataDir", c.DataDir)
	go fence(ctx, log, d)
	// Docker pulls from the registry on loopback, which it trusts without
	// TLS; the images keep the names they have in the registry.
	o := tunnelOptions{DataDir: c.DataDir, Wait: true, Orchestrator: Docker, Apps: apps(log, c, p, d, p.RegistryAddr())}
	tunnelErr := make(chan error, 1)
	go func() { tunnelErr <- runTunnel(ctx, log, o) }()
	select {
	case err := <-regErr:
		if err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		return nil
	case err := <-tunnelErr:
		return err
	}
}

// fence shuts the environment networks that lost their fences to a restart
// of the host, as soon as the daemon answers.
func fence(ctx context.Context, log *slog.Logger, d *docker.Orchestrator) {
	wait := time.Second
	for {
		err := d.FenceEnvironments(ctx)
		if err == nil {
			return
		}
		log.Warn("fencing the environments' networks failed; trying again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// waitRegistry waits until the registry answers, or says why it stopped.
func waitRegistry(ctx context.Context, addr string, stopped <-chan error) error {
	hc := &http.Client{Timeout: time.Second}
	for {
		if resp, err := hc.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-stopped:
			return fmt.Errorf("registry: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
