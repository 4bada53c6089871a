package api

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// Replay: the agent keeps, beside its telemetry, the unredacted message
// each failed exchange entered its route with (an Original), and answers
// them only to the runner at AgentOriginalsPath (an AgentBatch of events of
// KindOriginal, pulled and acknowledged as telemetry is). The runner keeps
// them, encrypted, and never sends them on; to replay one it POSTs a
// ReplayRequest to AgentReplayPath, and the agent answers a ReplayResult.
const (
	AgentOriginalsPath = "/cameleer/originals"
	AgentReplayPath    = "/cameleer/replay"
	// AgentResendPath takes a ReplayRequest with its Node: a replay at
	// the node where the exchange failed. An agent from before it answers
	// 404.
	AgentResendPath = "/cameleer/resend"
	KindOriginal    = "original"
)

// Original is the message an exchange entered its route with, unredacted.
// Headers are those whose values are text, numbers, booleans or
// characters, as text.
type Original struct {
	Exchange string            `json:"exchange"`
	Context  string            `json:"context"`
	Route    string            `json:"route"`
	Start    int64             `json:"start"`
	Status   string            `json:"status"`
	Body     []byte            `json:"body"`
	Headers  map[string]string `json:"headers"`
	// At, when the exchange failed at a node that sends to an endpoint
	// (a to), is that node and the message it was sending: where a replay
	// may re-enter.
	At *OriginalAt `json:"at,omitempty"`
}

// OriginalAt is the message a node of Route was sending when it failed.
type OriginalAt struct {
	NodeRef
	Body    []byte            `json:"body"`
	Headers map[string]string `json:"headers"`
}

// NodeRef names a node of a route by Camel's id.
type NodeRef struct {
	Node  string `json:"node"`
	Route string `json:"route"`
}

// Kept says the runner keeps the original of an exchange that began at
// Start (microseconds since the Unix epoch) in Route, so it can be
// replayed until Until (milliseconds since the Unix epoch) at the latest.
type Kept struct {
	Exchange string `json:"exchange"`
	Route    string `json:"route"`
	Start    int64  `json:"start"`
	Until    int64  `json:"until"`
	// At is the node where it failed, when a replay may re-enter there.
	At *NodeRef `json:"at,omitempty"`
}

// Evicted says the runner no longer keeps the original of an exchange:
// Reason is EvictedAge, EvictedBytes or EvictedDeleted (EvictedDamaged
// stays on the runner: it names no exchange).
type Evicted struct {
	Exchange string `json:"exchange"`
	Reason   string `json:"reason"`
}

// Why an original is no longer kept.
const (
	// EvictedAge: older than its environment's bound in age.
	EvictedAge = "age"
	// EvictedBytes: room was needed for newer ones, or it alone was past
	// its environment's bound in bytes.
	EvictedBytes = "bytes"
	// EvictedDamaged: its file was found damaged (Exchange is then "").
	EvictedDamaged = "damaged"
	// EvictedDeleted: its app was deleted, and its originals with it.
	EvictedDeleted = "deleted"
)

// OriginalEvent is one event of the agent's originals batch.
type OriginalEvent struct {
	Kind     string    `json:"kind"`
	Original *Original `json:"original"`
}

// ReplayRequest asks an agent to replay Body and Headers into Route of
// Context ("": the app's only CamelContext) as a new exchange, marked a
// replay of ReplayOf; with Node, to send them to that node's endpoint
// instead (at AgentResendPath).
type ReplayRequest struct {
	Context  string
	Route    string
	ReplayOf string
	Headers  map[string]string
	Body     []byte
	Node     string
}

// MarshalBinary writes r as the agent reads it (agent/ReplayRequest.java):
// context, route, replayOf, the header count and each name and value, the
// body, then the node if there is one; each string, the count and the
// body prefixed by its length as 4 big-endian bytes. Headers go in name
// order.
func (r ReplayRequest) MarshalBinary() ([]byte, error) {
	if len(r.Headers) > 1024 {
		return nil, fmt.Errorf("replay request: %d headers, at most 1024", len(r.Headers))
	}
	var b []byte
	str := func(s string) { b = binary.BigEndian.AppendUint32(b, uint32(len(s))); b = append(b, s...) }
	str(r.Context)
	str(r.Route)
	str(r.ReplayOf)
	names := make([]string, 0, len(r.Headers))
	for k := range r.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	b = binary.BigEndian.AppendUint32(b, uint32(len(names)))
	for _, k := range names {
		str(k)
		str(r.Headers[k])
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Body)))
	b = append(b, r.Body...)
	if r.Node != "" {
		str(r.Node)
	}
	return b, nil
}

// ReplayResult is the agent's answer to a replay: the new exchange and how
// it ended (StatusCompleted, StatusFailed, StatusHandled), with the error's
// type and message when it did not complete.
type ReplayResult struct {
	Exchange string `json:"exchange"`
	Status   string `json:"status"`
	Error    string `json:"error,omitempty"`
}

// RunnerReplay asks a runner, at RunnerAppsPath ENV/apps/APP/replay, to
// replay the original it keeps of Exchange, from its route's start or (At
// ReplayAtNode) at the node where it failed, as it was or, with Edit,
// with another body and headers.
type RunnerReplay struct {
	Exchange string      `json:"exchange"`
	At       string      `json:"at,omitempty"`
	Edit     *ReplayEdit `json:"edit,omitempty"`
}

// Where a replay re-enters.
const (
	// ReplayAtRoute: the route's start, with the message as it entered
	// (the default).
	ReplayAtRoute = "route"
	// ReplayAtNode: the endpoint of the node where the exchange failed,
	// a node that sends to one (a to), with the message it was sending;
	// what follows that node in its route does not run.
	ReplayAtNode = "node"
)

// ReplayEdit replaces an original's body and, when Headers is not nil, all
// its headers: the edit is applied on the runner, to the stored original.
type ReplayEdit struct {
	Body    []byte            `json:"body"`
	Headers map[string]string `json:"headers,omitempty"`
}

// RunnerReplayed is a runner's answer to a RunnerReplay: how the replay
// ended, and on which instance. The runner keeps the original either way
// (until its bounds evict it): the control plane refuses to replay again
// what a replay completed, unless forced.
type RunnerReplayed struct {
	ReplayResult
	Instance string `json:"instance"`
}
