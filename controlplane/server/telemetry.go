package server

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/cameleer/cameleer/controlplane/runners"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/controlplane/telemetry"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// ingestTelemetry stores a batch of what the agents of rc's apps saw, into
// rc's tenant.
func (s *Server) ingestTelemetry(rc *runners.Conn, w http.ResponseWriter, r *http.Request) {
	// Zipped, a batch is smaller than unzipped: the service bounds that.
	body := io.Reader(http.MaxBytesReader(w, r.Body, telemetry.MaxBatch))
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			httpjson.Error(w, http.StatusBadRequest, "telemetry batch: not gzip: "+err.Error())
			return
		}
		body = zr
	}
	ack, err := s.telemetry.IngestJSON(r.Context(), rc.Tenant, rc.ID, body)
	if err != nil {
		var se *httpjson.StatusError
		if errors.As(err, &se) {
			s.log.Warn("telemetry batch refused", "runner", rc.ID, "tenant", rc.Tenant, "err", err)
		}
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, ack)
}

// listExchanges answers GET …/apps/{app}/exchanges: route, node (failed
// at), status, from, to, q (an exchange id, a correlation id or a header
// value), correlation, cursor and limit select.
func (s *Server) listExchanges(w http.ResponseWriter, r *http.Request, a store.App) {
	q := r.URL.Query()
	eq := telemetry.ExchangeQuery{Tenant: a.Tenant, Environment: a.Environment, App: a.Name,
		Route: q.Get("route"), Node: q.Get("node"), Status: q.Get("status"), Text: q.Get("q"), Correlation: q.Get("correlation"), Cursor: q.Get("cursor")}
	var err error
	if eq.From, err = queryTime(q.Get("from")); err == nil {
		eq.To, err = queryTime(q.Get("to"))
	}
	if err == nil && q.Get("limit") != "" {
		if eq.Limit, err = strconv.Atoi(q.Get("limit")); err != nil {
			err = fmt.Errorf("limit %q is not a number", q.Get("limit"))
		}
	}
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := s.telemetry.Exchanges(r.Context(), eq)
	s.answer(w, r, page, err)
}

func (s *Server) getExchange(w http.ResponseWriter, r *http.Request, a store.App) {
	d, err := s.telemetry.Exchange(r.Context(), a.Tenant, a.Environment, a.Name, r.PathValue("id"))
	s.answer(w, r, d, err)
}

// listRoutes answers GET …/apps/{app}/routes?window=5m: the route models
// with each node's figures over the window (default 5m).
func (s *Server) listRoutes(w http.ResponseWriter, r *http.Request, a store.App) {
	window, err := queryDuration(r, "window", 5*time.Minute)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	routes, err := s.telemetry.Routes(r.Context(), a.Tenant, a.Environment, a.Name, window)
	s.answer(w, r, routes, err)
}

// series answers GET …/apps/{app}/series?route=&window=1h&step=1m:
// throughput and error rate over time, of the app or of one route.
func (s *Server) series(w http.ResponseWriter, r *http.Request, a store.App) {
	window, err := queryDuration(r, "window", time.Hour)
	var step time.Duration
	if err == nil {
		step, err = queryDuration(r, "step", max(window/60, time.Minute))
	}
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	points, err := s.telemetry.Series(r.Context(), a.Tenant, a.Environment, a.Name, r.URL.Query().Get("route"), window, step)
	s.answer(w, r, points, err)
}

// answer writes v, or what err says.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, v)
}

// queryTime reads an RFC 3339 time; "" is the zero time.
func queryTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", v)
	}
	return t, nil
}

// queryDuration reads a duration parameter (5m, 1h, 24h), def when absent.
func queryDuration(r *http.Request, name string, def time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s %q is not a duration like 5m, 1h or 24h", name, v)
	}
	return d, nil
}
