package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/cameleer/cameleer/api"
)

// Store is where telemetry is kept: the embedded store (package pebble) or
// ClickHouse (package clickhouse). Every method is scoped to one tenant;
// storetest.Run is what each must pass. The service validates what it
// hands a store, and asks for at most limit rows.
type Store interface {
	// Mark is the highest sequence number stored from runner (0: none).
	Mark(ctx context.Context, tenant, runner string) (uint64, error)
	// Write stores w and moves the runner's mark to w.Last with it.
	Write(ctx context.Context, w Write) error
	// Exchanges lists the exchanges q selects (its Cursor and Limit
	// aside) that sort after after (Position{} for the first page),
	// newest first, at most limit.
	Exchanges(ctx context.Context, q ExchangeQuery, after Position, limit int) ([]ExchangeSummary, error)
	// Exchange is one exchange by id with its trace (api.Exchange as
	// the agent sent it); ErrNotFound when there is none.
	Exchange(ctx context.Context, tenant, env, app, id string) (ExchangeSummary, json.RawMessage, error)
	// Stats sums the statistics q selects per route, node ("" for the
	// route's own) and minute, or, with q.Total, over the whole window.
	Stats(ctx context.Context, q StatsQuery) ([]StatRow, error)
	// Models are the latest route model of each context of the app.
	Models(ctx context.Context, tenant, env, app string) ([]api.RouteModel, error)
	// Tenants are the tenants with data.
	Tenants(ctx context.Context) ([]string, error)
	// DeleteBefore removes the tenant's exchanges and statistics older
	// than before (route models stay: they are replaced, not added).
	DeleteBefore(ctx context.Context, tenant string, before time.Time) error
	// Size is the store's size on disk in bytes.
	Size(ctx context.Context) (int64, error)
	Close() error
}

// ErrNotFound is a missing exchange.
var ErrNotFound = errors.New("not found")

// Write is what one Ingest adds: records above the runner's mark, already
// validated.
type Write struct {
	Tenant    string
	Runner    string
	Last      uint64
	Exchanges []StoredExchange
	Stats     []StatRow
	Models    []StoredModel
}

// StoredExchange is one traced exchange: its summary, the values of its
// headers (what Text matches beside the ids), the ids of the nodes whose
// runs failed (what Node matches), and its trace as sent.
type StoredExchange struct {
	Seq         uint64
	Summary     ExchangeSummary
	Headers     []string
	FailedNodes []string
	Trace       json.RawMessage
}

// StatRow is the statistics of one route (Node "") or one of its nodes in
// one minute. Seq is the record's that carried it, so a store that cannot
// write atomically can tell a row written twice (0 in query answers).
type StatRow struct {
	Seq         uint64
	Environment string
	App         string
	Route       string
	Node        string
	Minute      time.Time
	api.Count
}

// StoredModel is a route model of an app; a later one (by Received, then
// Seq) replaces an earlier one of the same context.
type StoredModel struct {
	Seq         uint64
	Environment string
	App         string
	Received    time.Time
	Model       api.RouteModel
}

// StatsQuery selects statistics of one app from From (inclusive) to To
// (exclusive) minutes: of one route, or of all (""); without Nodes, the
// routes' own rows only. With Total, the answer is one row per route and
// node (Minute is From), which a store may sum from coarser rows.
type StatsQuery struct {
	Tenant      string
	Environment string
	App         string
	Route       string
	From, To    time.Time
	Nodes       bool
	Total       bool
}

// Position is where a page of exchanges ends: the last one's start
// (microseconds) and id. Exchanges sort newest first; those of one
// microsecond in an order of the store's own (ClickHouse: by id; the
// embedded store: by its keys, the id's length first), by which the next
// page goes on after the last one.
type Position struct {
	Start int64
	ID    string
}
