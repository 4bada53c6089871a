package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Handler serves the deployment, app and egress routes of the runner's
// local API (see api.RunnerDeploymentsPath, api.RunnerAppsPath and
// api.RunnerEgressPath); deployments it accepts run until ctx is done.
func (w *Worker) Handler(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.RunnerDeploymentsPath, func(rw http.ResponseWriter, r *http.Request) {
		var d api.Deploy
		if !decodeWire(rw, r, "deployment", &d) {
			return
		}
		if err := w.Accept(ctx, d); err != nil {
			httpjson.Error(rw, http.StatusBadRequest, err.Error())
			return
		}
		rep, _ := w.Report(d.ID)
		httpjson.Write(rw, http.StatusAccepted, rep)
	})
	mux.HandleFunc("GET "+api.RunnerDeploymentsPath+"/{id}", func(rw http.ResponseWriter, r *http.Request) {
		rep, ok := w.Report(r.PathValue("id"))
		if !ok {
			httpjson.Error(rw, http.StatusNotFound, "no such deployment on this runner")
			return
		}
		httpjson.Write(rw, http.StatusOK, rep)
	})
	mux.HandleFunc("PUT "+api.RunnerAppsPath+"{env}"+api.RunnerEgressPath, func(rw http.ResponseWriter, r *http.Request) {
		env := r.PathValue("env")
		var e api.Egress
		if !decodeWire(rw, r, "egress", &e) {
			return
		}
		allow, err := api.CheckEgress(e.Allow)
		if err == nil {
			err = api.ValidName(env)
		}
		if err != nil {
			httpjson.Error(rw, http.StatusBadRequest, err.Error())
			return
		}
		e.Allow = allow
		// On the worker's context: a change half made is finished even
		// when the control plane stops waiting for it.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := w.opts.Egress.Set(ctx, env, e); err != nil {
			httpjson.Error(rw, http.StatusBadGateway, err.Error())
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	})
	apps := api.RunnerAppsPath + "{env}/apps"
	mux.HandleFunc("GET "+apps, func(rw http.ResponseWriter, r *http.Request) {
		names, err := w.opts.Runtime.List(r.Context(), w.opts.Tenant, r.PathValue("env"))
		if err != nil {
			httpjson.Error(rw, http.StatusBadGateway, err.Error())
			return
		}
		httpjson.Write(rw, http.StatusOK, map[string]any{"apps": append([]string{}, names...)})
	})
	mux.HandleFunc("GET "+apps+"/{app}/status", w.appScoped(func(rw http.ResponseWriter, r *http.Request, a orchestrator.App) {
		st, err := w.opts.Runtime.Status(r.Context(), a)
		if err != nil {
			httpjson.Error(rw, http.StatusBadGateway, err.Error())
			return
		}
		httpjson.Write(rw, http.StatusOK, w.appStatus(r.Context(), a, st))
	}))
	mux.HandleFunc("GET "+apps+"/{app}/logs", w.appScoped(func(rw http.ResponseWriter, r *http.Request, a orchestrator.App) {
		q := r.URL.Query()
		tail, follow := atoiOr(q.Get("tail"), 100), q.Get("follow") == "true"
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		out := &flushWriter{w: rw}
		if follow {
			// The stream is open: the caller sees so now, not with the
			// app's next line, which may be long in coming. What breaks
			// it from here on is told in its last line.
			out.Write(nil)
		}
		if err := w.opts.Runtime.Logs(r.Context(), a, tail, follow, out); err != nil {
			if !out.wrote {
				httpjson.Error(rw, http.StatusBadGateway, err.Error())
				return
			}
			fmt.Fprintf(rw, "cameleer: logs ended: %v\n", err)
		}
	}))
	mux.HandleFunc("POST "+apps+"/{app}/replay", w.appScoped(func(rw http.ResponseWriter, r *http.Request, a orchestrator.App) {
		var rr api.RunnerReplay
		if !decodeWire(rw, r, "replay", &rr) {
			return
		}
		if w.opts.Replay == nil {
			httpjson.Error(rw, http.StatusServiceUnavailable, "this runner keeps no originals")
			return
		}
		res, err := w.opts.Replay(r.Context(), a.Environment, a.Name, rr)
		if err != nil {
			var se *httpjson.StatusError
			if errors.As(err, &se) {
				httpjson.Error(rw, se.Status, se.Msg)
				return
			}
			httpjson.Error(rw, http.StatusBadGateway, err.Error())
			return
		}
		httpjson.Write(rw, http.StatusOK, res)
	}))
	// Not app-scoped: what a delete cut short left behind is deleted too.
	mux.HandleFunc("DELETE "+apps+"/{app}", func(rw http.ResponseWriter, r *http.Request) {
		a := orchestrator.App{Tenant: w.opts.Tenant, Environment: r.PathValue("env"), Name: r.PathValue("app")}
		for _, n := range []string{a.Environment, a.Name} {
			if err := api.ValidName(n); err != nil {
				httpjson.Error(rw, http.StatusBadRequest, err.Error())
				return
			}
		}
		// After a deployment of the app that rolls out: it would bring the app back.
		q := w.queue(a.Environment + "/" + a.Name)
		q.run.Lock()
		defer q.run.Unlock()
		if err := w.opts.Runtime.Delete(r.Context(), a); err != nil {
			httpjson.Error(rw, http.StatusBadGateway, "delete "+a.Name+": "+err.Error())
			return
		}
		w.opts.Log.Info("app deleted", "env", a.Environment, "app", a.Name)
		rw.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+apps+"/{app}/{op}", w.appScoped(func(rw http.ResponseWriter, r *http.Request, a orchestrator.App) {
		var op api.AppOp
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&op); err != nil && !errors.Is(err, io.EOF) {
			httpjson.Error(rw, http.StatusBadRequest, "bad request body: "+err.Error())
			return
		}
		a.Replicas = max(op.Replicas, 1)
		// Not while a deployment of the app rolls out: a restart that read
		// the old version would put it back.
		q := w.queue(a.Environment + "/" + a.Name)
		q.run.Lock()
		defer q.run.Unlock()
		var err error
		switch r.PathValue("op") {
		case "stop":
			err = w.opts.Runtime.Stop(r.Context(), a)
		case "start":
			err = w.opts.Runtime.Start(r.Context(), a)
		case "restart":
			err = w.opts.Runtime.Restart(r.Context(), a)
		default:
			httpjson.Error(rw, http.StatusNotFound, "no such operation: "+r.PathValue("op"))
			return
		}
		if err != nil {
			httpjson.Error(rw, http.StatusBadGateway, r.PathValue("op")+" "+a.Name+": "+err.Error())
			return
		}
		st, err := w.opts.Runtime.Status(r.Context(), a)
		if err != nil {
			httpjson.Error(rw, http.StatusBadGateway, err.Error())
			return
		}
		httpjson.Write(rw, http.StatusOK, w.appStatus(r.Context(), a, st))
	}))
	return mux
}

// decodeWire reads what the control plane sent into v, or answers why it
// cannot, naming what it was to be, and returns false.
func decodeWire(rw http.ResponseWriter, r *http.Request, what string, v any) bool {
	err := httpjson.DecodeWire(rw, r, v)
	if err == nil {
		return true
	}
	se := httpjson.Errorf(http.StatusBadRequest, "%v", err)
	errors.As(err, &se)
	httpjson.Error(rw, se.Status, "bad "+what+": "+se.Msg)
	return false
}

// appStatus is st as the control plane sees it, with the JVM facts the
// agent of the app's first ready instance serves.
func (w *Worker) appStatus(ctx context.Context, a orchestrator.App, st orchestrator.Status) api.AppStatus {
	out := api.AppStatus{App: a.Name, Image: st.Image, Replicas: st.Replicas, Ready: st.Ready, URL: w.opts.URL(a)}
	if len(st.Addresses) == 0 {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	u := "http://" + net.JoinHostPort(st.Addresses[0], strconv.Itoa(api.AgentPort)) + api.AgentFactsPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return out
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.opts.Log.Debug("agent facts", "app", a.Name, "err", err)
		return out
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err == nil && resp.StatusCode == http.StatusOK && json.Valid(b) {
		out.JVM = b
	}
	return out
}

// appScoped answers 404 for an app the environment does not have.
func (w *Worker) appScoped(h func(http.ResponseWriter, *http.Request, orchestrator.App)) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		a := orchestrator.App{Tenant: w.opts.Tenant, Environment: r.PathValue("env"), Name: r.PathValue("app")}
		names, err := w.opts.Runtime.List(r.Context(), a.Tenant, a.Environment)
		if err != nil {
			httpjson.Error(rw, http.StatusBadGateway, err.Error())
			return
		}
		if !slices.Contains(names, a.Name) {
			httpjson.Error(rw, http.StatusNotFound, fmt.Sprintf("no app %s in environment %s on this runner", a.Name, a.Environment))
			return
		}
		h(rw, r, a)
	}
}

// flushWriter sends each write on at once: followed logs are a stream.
type flushWriter struct {
	w     http.ResponseWriter
	wrote bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.wrote = true
	n, err := f.w.Write(p)
	http.NewResponseController(f.w).Flush()
	return n, err
}
