package deploy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/orchestrator"
)

// quietApp is a runtime with one app that prints nothing until it is
// asked to stop following.
type quietApp struct {
	orchestrator.Runtime
	following chan struct{}
}

func (q *quietApp) List(context.Context, string, string) ([]string, error) {
	return []string{"orders"}, nil
}

func (q *quietApp) Logs(ctx context.Context, _ orchestrator.App, _ int, follow bool, _ io.Writer) error {
	if follow {
		close(q.following)
		<-ctx.Done()
	}
	return nil
}

// Followed logs answer at once, before the app prints anything: a caller
// waiting for the answer's header must not wait for the app's next line.
func TestFollowedLogsAnswerAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := &quietApp{following: make(chan struct{})}
	srv := httptest.NewServer(New(Options{Tenant: "acme", Runtime: q}).Handler(ctx))
	defer srv.Close()
	// Bounds a hang, should the header not come; it measures nothing.
	reqCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	req, _ := http.NewRequestWithContext(reqCtx, http.MethodGet, srv.URL+api.RunnerAppsPath+"dev/apps/orders/logs?follow=true&tail=0", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("followed logs of an app that prints nothing: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("followed logs: %s", resp.Status)
	}
	<-q.following
}

// deleting records the apps it is asked to delete.
type deleting struct {
	orchestrator.Runtime
	deleted []string
}

func (d *deleting) Delete(_ context.Context, a orchestrator.App) error {
	d.deleted = append(d.deleted, a.Environment+"/"+a.Name)
	return nil
}

// An app is deleted whether or not the runtime lists it (a delete cut
// short left only part of it), and only by a valid name.
func TestDeleteApp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &deleting{}
	srv := httptest.NewServer(New(Options{Tenant: "acme", Runtime: d}).Handler(ctx))
	defer srv.Close()
	for path, want := range map[string]int{"dev/apps/orders": http.StatusNoContent, "dev/apps/Orders_": http.StatusBadRequest} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, srv.URL+api.RunnerAppsPath+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("DELETE %s: %s, want %d", path, resp.Status, want)
		}
	}
	if len(d.deleted) != 1 || d.deleted[0] != "dev/orders" {
		t.Errorf("deleted %v", d.deleted)
	}
}
