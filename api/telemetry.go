package api

import (
	"encoding/json"
	"math"
)

// What the agent in every app sees of Camel travels in three hops:
//
//  1. the runner pulls it from the agent (AgentTelemetryPath, an
//     AgentBatch; asking for what follows a sequence number acknowledges
//     everything up to it, so the agent never blocks on the network and
//     frees only what the runner has);
//  2. the runner appends it to its disk buffer, each event wrapped in a
//     TelemetryRecord with a sequence number of its own;
//  3. the runner posts TelemetryBatch through the tunnel
//     (RunnerTelemetryPath); the control plane stores each record once,
//     skipping sequence numbers it already has from that runner.

// Paths of the telemetry hops.
const (
	AgentTelemetryPath  = "/cameleer/telemetry"
	RunnerTelemetryPath = "/api/v1/runner/telemetry"
)

// AgentTokenEnv names the variable the runner gives each app: its agent
// answers AgentTelemetryPath only to a request that shows it as a bearer
// token (other apps of the environment reach the agent's port too).
const AgentTokenEnv = "CAMELEER_AGENT_TOKEN"

// AgentBatch is the agent's answer at AgentTelemetryPath?boot=B&after=N:
// the events with sequence numbers after N. Boot is random per agent start;
// when the asked boot is not the agent's, N means nothing and the answer
// starts from the oldest event the agent still has. Last is the sequence
// number of the last event in Events (N when there are none). Dropped counts
// the events the agent dropped since it started (its buffer was full).
type AgentBatch struct {
	Boot    string            `json:"boot"`
	Last    uint64            `json:"last"`
	Dropped uint64            `json:"dropped"`
	Events  []json.RawMessage `json:"events"`
}

// Event kinds.
const (
	KindExchange = "exchange"
	KindStats    = "stats"
	KindRoutes   = "routes"
	// KindKept and KindEvicted are the runner's: it keeps an exchange's
	// original, or no longer does (see replay.go).
	KindKept    = "kept"
	KindEvicted = "evicted"
)

// Event is one thing the agent saw, or the runner did with an original:
// exactly one of Exchange, Stats, Routes, Kept and Evicted is set, as Kind
// says.
type Event struct {
	Kind     string      `json:"kind"`
	Exchange *Exchange   `json:"exchange,omitempty"`
	Stats    *Stats      `json:"stats,omitempty"`
	Routes   *RouteModel `json:"routes,omitempty"`
	Kept     *Kept       `json:"kept,omitempty"`
	Evicted  *Evicted    `json:"evicted,omitempty"`
}

// Exchange statuses.
const (
	// StatusCompleted: the exchange ended without an exception.
	StatusCompleted = "completed"
	// StatusFailed: it ended with an exception nobody handled.
	StatusFailed = "failed"
	// StatusHandled: it failed and an error handler (onException with
	// handled, a dead letter channel) took it.
	StatusHandled = "handled"
)

// Exchange is the full trace of one Camel exchange: every failed one, and
// a configured share of the rest. Times are microseconds: Start since the
// Unix epoch, durations elapsed.
type Exchange struct {
	ID      string `json:"id"`
	Context string `json:"context"`
	Route   string `json:"route"`
	// From is the route's endpoint URI with credentials removed.
	From string `json:"from"`
	// Correlation is the id of the first exchange of the chain this one
	// belongs to (itself when it began one); Parent is the exchange this
	// one was split, multicast, wire-tapped or handed over (seda:) from.
	Correlation string `json:"correlation"`
	Parent      string `json:"parent,omitempty"`
	// ReplayOf is the exchange this one replays; Replayable says the
	// runner holds this one's original, so it can be replayed.
	ReplayOf     string         `json:"replayOf,omitempty"`
	Replayable   bool           `json:"replayable,omitempty"`
	Start        int64          `json:"start"`
	Duration     int64          `json:"duration"`
	Status       string         `json:"status"`
	Redeliveries int            `json:"redeliveries,omitempty"`
	Error        *ExchangeError `json:"error,omitempty"`
	// Body and Headers are the message as it entered the route, redacted
	// in the agent and cut at its size bound; BodySize is the body's size
	// before that (-1 when unknown, as for a stream Camel did not cache).
	Body          string            `json:"body,omitempty"`
	BodySize      int64             `json:"bodySize"`
	BodyTruncated bool              `json:"bodyTruncated,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	// Nodes are the processors the exchange passed, in the order they
	// started, with those of routes it called (direct:) and of its split
	// or multicast children nested under the node that called them.
	Nodes []NodeRun `json:"nodes"`
	// NodesDropped counts the node runs past the agent's bound.
	NodesDropped int `json:"nodesDropped,omitempty"`
}

// ExchangeError is the exception an exchange failed with; Stack is cut at
// the agent's bound.
type ExchangeError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// NodeRun is one processor's run within an exchange. ID is Camel's node id
// (as set with id() or generated), Type its kind (to, choice, split,
// filter, process, log, ...). Parent is the index in Exchange.Nodes of the
// run it is nested in (-1 for none). Exchange is set when the run was of
// another exchange than the trace's own (a split child).
type NodeRun struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Label    string `json:"label,omitempty"`
	Route    string `json:"route"`
	Parent   int    `json:"parent"`
	Exchange string `json:"exchange,omitempty"`
	Start    int64  `json:"start"`
	Duration int64  `json:"duration"`
	Failed   bool   `json:"failed,omitempty"`
}

// Stats are the aggregates of every exchange of one CamelContext over a
// window of Seconds from Start (microseconds since the Unix epoch), taken
// whether or not the exchange was traced.
type Stats struct {
	Context string       `json:"context"`
	Start   int64        `json:"start"`
	Seconds int          `json:"seconds"`
	Routes  []RouteStats `json:"routes"`
}

// RouteStats are one route's exchanges in a window, with its nodes'.
type RouteStats struct {
	Route string `json:"route"`
	Count
	Nodes []NodeStats `json:"nodes,omitempty"`
}

// NodeStats are one node's runs in a window.
type NodeStats struct {
	ID string `json:"id"`
	Count
}

// Count is how many ran, how many failed, and their durations: Sum in
// microseconds and a sparse histogram, pairs of [bucket, count] (see
// Bucket).
type Count struct {
	Count    uint64      `json:"count"`
	Failures uint64      `json:"failures"`
	Sum      int64       `json:"sum"`
	Buckets  [][2]uint64 `json:"buckets,omitempty"`
}

// BucketsPerDoubling sets the histograms' resolution: a bucket's upper
// bound is at most 9 % above its lower one.
const BucketsPerDoubling = 8

// Bucket is the histogram bucket of a duration in microseconds:
// floor(8·log2(d)), 0 for d ≤ 1. The agent computes the same.
func Bucket(micros int64) int {
	if micros <= 1 {
		return 0
	}
	return int(math.Floor(BucketsPerDoubling * math.Log2(float64(micros))))
}

// BucketUpper is the largest duration, in microseconds, bucket b holds.
func BucketUpper(b int) float64 {
	return math.Exp2(float64(b+1) / BucketsPerDoubling)
}

// RouteModel is the routes of one CamelContext as Camel defines them,
// sent when the context starts and whenever its routes change.
type RouteModel struct {
	Context string       `json:"context"`
	Routes  []RouteGraph `json:"routes"`
}

// RouteGraph is one route: its nodes in the route's order (the first is
// its from endpoint, Type "from") and the edges an exchange can take
// between them, as pairs of node ids.
type RouteGraph struct {
	ID          string      `json:"id"`
	From        string      `json:"from"`
	Description string      `json:"description,omitempty"`
	Nodes       []RouteNode `json:"nodes"`
	Edges       [][2]string `json:"edges"`
}

// RouteNode is one node of a route's model: Parent is the id of the node
// it is nested in (a choice's when, a split's body), "" at the top level;
// Order its position in the route, from 0.
type RouteNode struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Label  string `json:"label,omitempty"`
	Parent string `json:"parent,omitempty"`
	Order  int    `json:"order"`
}

// TelemetryRecord is one agent event as the runner buffers and forwards
// it. Seq is the runner's, strictly increasing for as long as its data dir
// lives; Environment, App and Instance are what the runner knows the agent
// by (never what the agent says of itself); Received is when the runner
// pulled it, in Unix milliseconds.
type TelemetryRecord struct {
	Seq         uint64          `json:"seq"`
	Environment string          `json:"environment"`
	App         string          `json:"app"`
	Instance    string          `json:"instance"`
	Received    int64           `json:"received"`
	Event       json.RawMessage `json:"event"`
}

// TelemetryBatch is what a runner posts at RunnerTelemetryPath, gzipped.
// AgentDropped and RunnerDropped are the runner's running totals of
// events its agents dropped and records its own buffer dropped.
type TelemetryBatch struct {
	Records       []TelemetryRecord `json:"records"`
	AgentDropped  uint64            `json:"agentDropped"`
	RunnerDropped uint64            `json:"runnerDropped"`
}

// TelemetryAck is the control plane's answer to a batch: Stored records
// were new, Duplicates it already had; Last is the highest sequence number
// it holds from the runner, which the runner may forget up to.
type TelemetryAck struct {
	Stored     int    `json:"stored"`
	Duplicates int    `json:"duplicates"`
	Last       uint64 `json:"last"`
}
