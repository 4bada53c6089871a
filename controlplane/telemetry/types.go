package telemetry

import (
	"encoding/json"
	"fmt"
	"time"
)

// The types of this file are the API's answer bodies: camelCase, times as
// RFC 3339 with milliseconds (Time), durations in microseconds (…Micros).

// Time is an instant that encodes as RFC 3339 with milliseconds, in UTC.
type Time struct{ time.Time }

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON writes t as RFC 3339 with milliseconds.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(timeLayout) + `"`), nil
}

// UnmarshalJSON reads any RFC 3339 time.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time %q: %w", s, err)
	}
	t.Time = v
	return nil
}

// micros is the time of a count of microseconds since the Unix epoch.
func micros(us int64) Time { return Time{time.UnixMicro(us).UTC()} }

// ExchangeQuery selects exchanges of one app. Zero fields select all:
// Route, Status (api.StatusCompleted, StatusFailed, StatusHandled), From
// (inclusive) and To (exclusive) on the exchange's start, Text (an exchange
// id, a correlation id or a header value, matched whole), Correlation (the
// exchanges of one chain), Node (those in which a run of the node with
// that Camel id failed: a route diagram's node's failures). Cursor is a page's Next; Limit is at most
// MaxLimit (0: DefaultLimit).
type ExchangeQuery struct {
	Tenant      string
	Environment string
	App         string
	Route       string
	Node        string
	Status      string
	From, To    time.Time
	Text        string
	Correlation string
	Cursor      string
	Limit       int
}

// Page sizes of Exchanges.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ExchangePage is one page of exchanges, newest first; Next is the cursor
// of the following page, "" after the last.
type ExchangePage struct {
	Exchanges []ExchangeSummary `json:"exchanges"`
	Next      string            `json:"next,omitempty"`
}

// ExchangeSummary is one traced exchange as a list shows it.
type ExchangeSummary struct {
	ID          string `json:"id"`
	Environment string `json:"environment"`
	App         string `json:"app"`
	Instance    string `json:"instance"`
	Context     string `json:"context"`
	Route       string `json:"route"`
	// From is the route's endpoint URI, credentials removed by the agent.
	From           string `json:"from"`
	Correlation    string `json:"correlation"`
	Parent         string `json:"parent,omitempty"`
	Start          Time   `json:"start"`
	DurationMicros int64  `json:"durationMicros"`
	Status         string `json:"status"`
	Redeliveries   int    `json:"redeliveries,omitempty"`
	ErrorType      string `json:"errorType,omitempty"`
	ErrorMessage   string `json:"errorMessage,omitempty"`
	NodeCount      int    `json:"nodeCount"`
}

// ExchangeDetail is one exchange's whole trace: its message as it entered
// the route, its error with the stack, the node runs in the order they
// started, and the summaries of the other exchanges of its chain (same
// correlation id), newest first, at most MaxLimit.
type ExchangeDetail struct {
	ExchangeSummary
	// ReplayOf is the exchange this one replays; Replayable says its
	// runner was handed its original (what it did with it since is at
	// …/exchanges/{id}/replays).
	ReplayOf      string            `json:"replayOf,omitempty"`
	Replayable    bool              `json:"replayable,omitempty"`
	Body          string            `json:"body,omitempty"`
	BodySize      int64             `json:"bodySize"`
	BodyTruncated bool              `json:"bodyTruncated,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	Stack         string            `json:"stack,omitempty"`
	Nodes         []TraceNode       `json:"nodes"`
	NodesDropped  int               `json:"nodesDropped,omitempty"`
	Correlated    []ExchangeSummary `json:"correlated"`
}

// TraceNode is one processor's run within an exchange (api.NodeRun):
// Parent is the index in Nodes of the run it is nested in (-1: none),
// OffsetMicros when it started after the exchange did.
type TraceNode struct {
	ID             string `json:"id"`
	Type           string `json:"type"`
	Label          string `json:"label,omitempty"`
	Route          string `json:"route"`
	Parent         int    `json:"parent"`
	Exchange       string `json:"exchange,omitempty"`
	Start          Time   `json:"start"`
	OffsetMicros   int64  `json:"offsetMicros"`
	DurationMicros int64  `json:"durationMicros"`
	Failed         bool   `json:"failed,omitempty"`
}

// Aggregate is what ran over a window: how many, how many failed, the mean
// and the percentiles of their durations. A percentile is the upper bound
// of the histogram bucket it falls in (at most 9 % above the true value).
type Aggregate struct {
	Count      uint64  `json:"count"`
	Failures   uint64  `json:"failures"`
	MeanMicros float64 `json:"meanMicros"`
	P50Micros  float64 `json:"p50Micros"`
	P95Micros  float64 `json:"p95Micros"`
	P99Micros  float64 `json:"p99Micros"`
}

// RouteView is one route of an app: its model as the agent last sent it
// (Context, From, Description, Nodes in the route's order, Edges) with the
// route's and each node's Aggregate over the window asked. A route with
// statistics but no model has Nodes from its statistics only.
type RouteView struct {
	Context     string      `json:"context"`
	ID          string      `json:"id"`
	From        string      `json:"from"`
	Description string      `json:"description,omitempty"`
	Stats       Aggregate   `json:"stats"`
	Nodes       []RouteNode `json:"nodes"`
	Edges       [][2]string `json:"edges"`
}

// RouteNode is one node of a route's model with its Aggregate.
type RouteNode struct {
	ID     string    `json:"id"`
	Type   string    `json:"type,omitempty"`
	Label  string    `json:"label,omitempty"`
	Parent string    `json:"parent,omitempty"`
	Order  int       `json:"order"`
	Stats  Aggregate `json:"stats"`
}

// Point is one step of a series: the exchanges that started in [Time,
// Time+step), per second (Throughput) and the share that failed
// (ErrorRate, 0 to 1).
type Point struct {
	Time       Time    `json:"time"`
	Count      uint64  `json:"count"`
	Failures   uint64  `json:"failures"`
	Throughput float64 `json:"throughput"`
	ErrorRate  float64 `json:"errorRate"`
}
