// Package clickhouse is the telemetry store for scale: ClickHouse, spoken
// to over its HTTP interface with net/http. Its SQL runs on 18.16 (Debian
// 12's) as on current releases: MergeTree tables partitioned by day with
// the tenant first in the sort key, no TTL (retention is Run's mutations
// and partition drops), no query parameters (literals are quoted here).
// ClickHouse has no transactions: the data of a write goes in before the
// runner's mark, and a row written twice (a crash between the two, the
// batch sent again) is told apart by its key: ReplacingMergeTree tables
// and queries that read one row per key. docs/observability.md has the
// whole.
package clickhouse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/telemetry"
)

// Options say where the server is.
type Options struct {
	// URL is the server's HTTP interface, e.g. http://127.0.0.1:8123.
	URL string
	// Database holds the tables (created if missing); "" is "cameleer".
	Database string
	// User and Password, when set, are sent with every request.
	User, Password string
	// Client is the HTTP client (nil: one with a 60 s timeout).
	Client *http.Client
}

// Store is a ClickHouse database of telemetry.
type Store struct {
	opts Options
	db   string // quoted
}

var _ telemetry.Store = (*Store)(nil)

var dbName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Open creates the database and its tables if they are missing.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Database == "" {
		o.Database = "cameleer"
	}
	if !dbName.MatchString(o.Database) {
		return nil, fmt.Errorf("clickhouse database %q: want letters, digits and _", o.Database)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 60 * time.Second}
	}
	s := &Store{opts: o, db: "`" + o.Database + "`"}
	for _, q := range append([]string{"CREATE DATABASE IF NOT EXISTS " + s.db}, s.schema()...) {
		if _, err := s.exec(ctx, q, nil); err != nil {
			return nil, fmt.Errorf("create the telemetry tables in %s: %w", o.URL, err)
		}
	}
	if err := s.addColumn(ctx, "exchanges", "failed_nodes", "Array(String)"); err != nil {
		return nil, fmt.Errorf("upgrade the telemetry tables in %s: %w", o.URL, err)
	}
	return s, nil
}

// addColumn adds a column that a table made by an older version lacks
// (ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS).
func (s *Store) addColumn(ctx context.Context, table, column, typ string) error {
	n := 0
	err := s.query(ctx, "SELECT name FROM system.columns WHERE database = "+lit(s.opts.Database)+
		" AND table = "+lit(table)+" AND name = "+lit(column), func([]byte) error { n++; return nil })
	if err != nil || n > 0 {
		return err
	}
	_, err = s.exec(ctx, "ALTER TABLE "+s.db+"."+table+" ADD COLUMN "+column+" "+typ, nil)
	return err
}

// schema: every table sorts by tenant first; exchanges and stats are
// partitioned by day (the unit retention drops), rows written twice have
// the same sort key (ReplacingMergeTree merges them away in time, and the
// queries never count them twice meanwhile).
func (s *Store) schema() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + s.db + `.exchanges (
			tenant String, environment String, app String, start_us Int64, id String,
			instance String, context String, route String, from_uri String, correlation String, parent String,
			duration_us Int64, status String, redeliveries UInt32, error_type String, error_message String,
			node_count UInt32, header_values Array(String), trace String, runner String, seq UInt64,
			failed_nodes Array(String)
		) ENGINE = ReplacingMergeTree()
		PARTITION BY toYYYYMMDD(toDateTime(intDiv(start_us, 1000000)))
		ORDER BY (tenant, environment, app, start_us, id)`,
		`CREATE TABLE IF NOT EXISTS ` + s.db + `.stats (
			tenant String, environment String, app String, minute Int64, route String, node String,
			runner String, seq UInt64, runs UInt64, failures UInt64, total_us Int64,
			bk Array(UInt16), bn Array(UInt64)
		) ENGINE = ReplacingMergeTree()
		PARTITION BY toYYYYMMDD(toDateTime(minute))
		ORDER BY (tenant, environment, app, minute, route, node, runner, seq)`,
		`CREATE TABLE IF NOT EXISTS ` + s.db + `.models (
			tenant String, environment String, app String, context String,
			received_ms UInt64, seq UInt64, model String
		) ENGINE = ReplacingMergeTree(received_ms)
		ORDER BY (tenant, environment, app, context)`,
		`CREATE TABLE IF NOT EXISTS ` + s.db + `.marks (
			tenant String, runner String, seq UInt64
		) ENGINE = ReplacingMergeTree(seq)
		ORDER BY (tenant, runner)`,
	}
}

// Close does nothing: the store holds no connection of its own.
func (s *Store) Close() error { return nil }

// exec runs query; with rows, query is an INSERT whose data rows are.
func (s *Store) exec(ctx context.Context, query string, rows io.Reader) ([]byte, error) {
	v := url.Values{"output_format_json_quote_64bit_integers": {"0"}}
	body := rows
	if rows == nil {
		body = strings.NewReader(query)
	} else {
		v.Set("query", query)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL+"/?"+v.Encode(), body)
	if err != nil {
		return nil, err
	}
	if s.opts.User != "" {
		req.SetBasicAuth(s.opts.User, s.opts.Password)
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if len(msg) > 500 {
			msg = msg[:500]
		}
		return nil, fmt.Errorf("clickhouse: %s: %s", resp.Status, msg)
	}
	return out, nil
}

// query runs a SELECT and decodes each row (JSONEachRow) with fn.
func (s *Store) query(ctx context.Context, q string, fn func(row []byte) error) error {
	out, err := s.exec(ctx, q+" FORMAT JSONEachRow", nil)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, len(out)+1)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("clickhouse: a row: %w", err)
		}
	}
	return sc.Err()
}

// insert writes rows, each as one JSON object, into table.
func insert[T any](ctx context.Context, s *Store, table string, rows []T) error {
	if len(rows) == 0 {
		return nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for i := range rows {
		if err := enc.Encode(&rows[i]); err != nil {
			return err
		}
	}
	if _, err := s.exec(ctx, "INSERT INTO "+s.db+"."+table+" FORMAT JSONEachRow", &b); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}

// lit quotes a string as a ClickHouse literal.
func lit(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func num[T int64 | uint64](v T) string { return fmt.Sprint(v) }

// Mark is the highest seq of the runner's marks.
func (s *Store) Mark(ctx context.Context, tenant, runner string) (uint64, error) {
	var mark uint64
	err := s.query(ctx, "SELECT max(seq) AS seq FROM "+s.db+".marks WHERE tenant = "+lit(tenant)+
		" AND runner = "+lit(runner), func(row []byte) error {
		var r struct{ Seq uint64 }
		err := json.Unmarshal(row, &r)
		mark = r.Seq
		return err
	})
	return mark, err
}

type exchangeRow struct {
	Tenant       string   `json:"tenant,omitempty"`
	Environment  string   `json:"environment"`
	App          string   `json:"app"`
	StartUs      int64    `json:"start_us"`
	ID           string   `json:"id"`
	Instance     string   `json:"instance"`
	Context      string   `json:"context"`
	Route        string   `json:"route"`
	FromURI      string   `json:"from_uri"`
	Correlation  string   `json:"correlation"`
	Parent       string   `json:"parent"`
	DurationUs   int64    `json:"duration_us"`
	Status       string   `json:"status"`
	Redeliveries int      `json:"redeliveries"`
	ErrorType    string   `json:"error_type"`
	ErrorMessage string   `json:"error_message"`
	NodeCount    int      `json:"node_count"`
	HeaderValues []string `json:"header_values,omitempty"`
	FailedNodes  []string `json:"failed_nodes,omitempty"`
	Trace        string   `json:"trace,omitempty"`
	Runner       string   `json:"runner,omitempty"`
	Seq          uint64   `json:"seq,omitempty"`
}

// summaryColumns are what a list reads of an exchange.
const summaryColumns = `environment, app, start_us, id, instance, context, route, from_uri, correlation, parent,
	duration_us, status, redeliveries, error_type, error_message, node_count`

func (r *exchangeRow) summary() telemetry.ExchangeSummary {
	return telemetry.ExchangeSummary{ID: r.ID, Environment: r.Environment, App: r.App, Instance: r.Instance,
		Context: r.Context, Route: r.Route, From: r.FromURI, Correlation: r.Correlation, Parent: r.Parent,
		Start: telemetry.Time{Time: time.UnixMicro(r.StartUs).UTC()}, DurationMicros: r.DurationUs,
		Status: r.Status, Redeliveries: r.Redeliveries, ErrorType: r.ErrorType, ErrorMessage: r.ErrorMessage,
		NodeCount: r.NodeCount}
}

type statRow struct {
	Tenant      string   `json:"tenant"`
	Environment string   `json:"environment"`
	App         string   `json:"app"`
	Minute      int64    `json:"minute"`
	Route       string   `json:"route"`
	Node        string   `json:"node"`
	Runner      string   `json:"runner"`
	Seq         uint64   `json:"seq"`
	Runs        uint64   `json:"runs"`
	Failures    uint64   `json:"failures"`
	TotalUs     int64    `json:"total_us"`
	BK          []uint64 `json:"bk"`
	BN          []uint64 `json:"bn"`
}

type modelRow struct {
	Tenant      string `json:"tenant"`
	Environment string `json:"environment"`
	App         string `json:"app"`
	Context     string `json:"context"`
	ReceivedMs  int64  `json:"received_ms"`
	Seq         uint64 `json:"seq"`
	Model       string `json:"model"`
}

// Write inserts the data, then the runner's mark: a crash between the two
// leaves rows that the batch, sent again, writes again with the same keys.
func (s *Store) Write(ctx context.Context, w telemetry.Write) error {
	xs := make([]exchangeRow, len(w.Exchanges))
	for i, x := range w.Exchanges {
		m := x.Summary
		xs[i] = exchangeRow{Tenant: w.Tenant, Environment: m.Environment, App: m.App, StartUs: m.Start.UnixMicro(),
			ID: m.ID, Instance: m.Instance, Context: m.Context, Route: m.Route, FromURI: m.From,
			Correlation: m.Correlation, Parent: m.Parent, DurationUs: m.DurationMicros, Status: m.Status,
			Redeliveries: m.Redeliveries, ErrorType: m.ErrorType, ErrorMessage: m.ErrorMessage, NodeCount: m.NodeCount,
			HeaderValues: x.Headers, FailedNodes: x.FailedNodes, Trace: string(x.Trace), Runner: w.Runner, Seq: x.Seq}
	}
	ss := make([]statRow, len(w.Stats))
	for i, r := range w.Stats {
		ss[i] = statRow{Tenant: w.Tenant, Environment: r.Environment, App: r.App, Minute: r.Minute.Unix(),
			Route: r.Route, Node: r.Node, Runner: w.Runner, Seq: r.Seq, Runs: r.Count.Count, Failures: r.Failures,
			TotalUs: r.Sum, BK: []uint64{}, BN: []uint64{}}
		for _, b := range r.Buckets {
			ss[i].BK, ss[i].BN = append(ss[i].BK, b[0]), append(ss[i].BN, b[1])
		}
	}
	ms := make([]modelRow, len(w.Models))
	for i, m := range w.Models {
		b, err := json.Marshal(m.Model)
		if err != nil {
			return fmt.Errorf("encode route model of %s: %w", m.App, err)
		}
		ms[i] = modelRow{Tenant: w.Tenant, Environment: m.Environment, App: m.App, Context: m.Model.Context,
			ReceivedMs: m.Received.UnixMilli(), Seq: m.Seq, Model: string(b)}
	}
	if err := insert(ctx, s, "exchanges", xs); err != nil {
		return err
	}
	if err := insert(ctx, s, "stats", ss); err != nil {
		return err
	}
	if err := insert(ctx, s, "models", ms); err != nil {
		return err
	}
	mark := []struct {
		Tenant string `json:"tenant"`
		Runner string `json:"runner"`
		Seq    uint64 `json:"seq"`
	}{{w.Tenant, w.Runner, w.Last}}
	return insert(ctx, s, "marks", mark)
}

func appWhere(tenant, env, app string) string {
	return "tenant = " + lit(tenant) + " AND environment = " + lit(env) + " AND app = " + lit(app)
}

// Exchanges reads one row per (start, id): LIMIT 1 BY keeps a row written
// twice out before ClickHouse merges it away.
func (s *Store) Exchanges(ctx context.Context, q telemetry.ExchangeQuery, after telemetry.Position, limit int) ([]telemetry.ExchangeSummary, error) {
	w := []string{appWhere(q.Tenant, q.Environment, q.App)}
	if q.Route != "" {
		w = append(w, "route = "+lit(q.Route))
	}
	if q.Status != "" {
		w = append(w, "status = "+lit(q.Status))
	}
	if q.Node != "" {
		w = append(w, "has(failed_nodes, "+lit(q.Node)+")")
	}
	if !q.From.IsZero() {
		w = append(w, "start_us >= "+num(q.From.UnixMicro()))
	}
	if !q.To.IsZero() {
		w = append(w, "start_us < "+num(q.To.UnixMicro()))
	}
	if q.Text != "" {
		t := lit(q.Text)
		w = append(w, "(id = "+t+" OR correlation = "+t+" OR has(header_values, "+t+"))")
	}
	if q.Correlation != "" {
		w = append(w, "correlation = "+lit(q.Correlation))
	}
	if after != (telemetry.Position{}) {
		st := num(after.Start)
		w = append(w, "(start_us < "+st+" OR start_us = "+st+" AND id > "+lit(after.ID)+")")
	}
	var out []telemetry.ExchangeSummary
	err := s.query(ctx, "SELECT "+summaryColumns+" FROM "+s.db+".exchanges WHERE "+strings.Join(w, " AND ")+
		" ORDER BY start_us DESC, id ASC LIMIT 1 BY start_us, id LIMIT "+strconv.Itoa(limit), func(row []byte) error {
		var r exchangeRow
		if err := json.Unmarshal(row, &r); err != nil {
			return err
		}
		out = append(out, r.summary())
		return nil
	})
	return out, err
}

// Exchange reads the newest row of the id (no index holds ids: the app's
// rows are scanned, their ids only).
func (s *Store) Exchange(ctx context.Context, tenant, env, app, id string) (telemetry.ExchangeSummary, json.RawMessage, error) {
	var r *exchangeRow
	// PREWHERE: the traces (kilobytes each) are read only where the id is.
	err := s.query(ctx, "SELECT "+summaryColumns+", trace FROM "+s.db+".exchanges PREWHERE id = "+lit(id)+
		" WHERE "+appWhere(tenant, env, app)+" ORDER BY start_us DESC LIMIT 1", func(row []byte) error {
		r = new(exchangeRow)
		return json.Unmarshal(row, r)
	})
	if err == nil && r == nil {
		err = telemetry.ErrNotFound
	}
	if err != nil {
		return telemetry.ExchangeSummary{}, nil, err
	}
	return r.summary(), json.RawMessage(r.Trace), nil
}

// Stats sums the rows FINAL reads: one per key, however often written.
func (s *Store) Stats(ctx context.Context, q telemetry.StatsQuery) ([]telemetry.StatRow, error) {
	w := []string{appWhere(q.Tenant, q.Environment, q.App),
		"minute >= " + num(q.From.Unix()), "minute < " + num(q.To.Unix())}
	if q.Route != "" {
		w = append(w, "route = "+lit(q.Route))
	}
	if !q.Nodes {
		w = append(w, "node = ''")
	}
	// "at", not "minute": an alias would stand for the column in WHERE.
	at, by := "minute", "route, node, minute"
	if q.Total {
		at, by = num(q.From.Unix()), "route, node"
	}
	var out []telemetry.StatRow
	err := s.query(ctx, "SELECT route, node, "+at+" AS at, sum(runs) AS runs, sum(failures) AS failures, sum(total_us) AS total_us,"+
		" sumMap(bk, bn) AS buckets FROM "+s.db+".stats FINAL WHERE "+strings.Join(w, " AND ")+
		" GROUP BY "+by, func(row []byte) error {
		var r struct {
			statRow
			At      int64       `json:"at"`
			Buckets [2][]uint64 `json:"buckets"`
		}
		if err := json.Unmarshal(row, &r); err != nil {
			return err
		}
		c := api.Count{Count: r.Runs, Failures: r.Failures, Sum: r.TotalUs}
		for i := range r.Buckets[0] {
			if i < len(r.Buckets[1]) {
				c.Buckets = append(c.Buckets, [2]uint64{r.Buckets[0][i], r.Buckets[1][i]})
			}
		}
		out = append(out, telemetry.StatRow{Environment: q.Environment, App: q.App, Route: r.Route, Node: r.Node,
			Minute: time.Unix(r.At, 0).UTC(), Count: c})
		return nil
	})
	return out, err
}

// Models reads the latest model of each context.
func (s *Store) Models(ctx context.Context, tenant, env, app string) ([]api.RouteModel, error) {
	var out []api.RouteModel
	err := s.query(ctx, "SELECT model FROM "+s.db+".models WHERE "+appWhere(tenant, env, app)+
		" ORDER BY received_ms DESC, seq DESC LIMIT 1 BY context", func(row []byte) error {
		var r modelRow
		var m api.RouteModel
		if err := json.Unmarshal(row, &r); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(r.Model), &m); err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	return out, err
}

// Tenants are those with a mark.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	var out []string
	err := s.query(ctx, "SELECT DISTINCT tenant FROM "+s.db+".marks", func(row []byte) error {
		var r struct{ Tenant string }
		err := json.Unmarshal(row, &r)
		out = append(out, r.Tenant)
		return err
	})
	return out, err
}

// mutationPoll is how often DeleteBefore looks whether its mutations are
// done.
const mutationPoll = 100 * time.Millisecond

// DeleteBefore deletes the tenant's old rows with a mutation per table
// (ALTER TABLE … DELETE, in ClickHouse since 1.1.54388, so in 18.16), only
// when there are such rows (a mutation rewrites every part it touches),
// and waits until it is done; then it drops the partitions that hold no
// rows any more.
func (s *Store) DeleteBefore(ctx context.Context, tenant string, before time.Time) error {
	for _, d := range []struct{ table, cond string }{
		{"exchanges", "start_us < " + num(before.UnixMicro())},
		{"stats", "minute < " + num(before.Truncate(time.Minute).Unix())},
	} {
		where := "tenant = " + lit(tenant) + " AND " + d.cond
		var n struct{ N uint64 }
		err := s.query(ctx, "SELECT count() AS n FROM "+s.db+"."+d.table+" WHERE "+where, func(row []byte) error {
			return json.Unmarshal(row, &n)
		})
		if err != nil {
			return fmt.Errorf("retention of %s in %s: %w", tenant, d.table, err)
		}
		if n.N == 0 {
			continue
		}
		if _, err := s.exec(ctx, "ALTER TABLE "+s.db+"."+d.table+" DELETE WHERE "+where, nil); err != nil {
			return fmt.Errorf("retention of %s in %s: %w", tenant, d.table, err)
		}
		if err := s.waitMutations(ctx, d.table); err != nil {
			return fmt.Errorf("retention of %s in %s: %w", tenant, d.table, err)
		}
	}
	return s.dropEmpty(ctx)
}

func (s *Store) waitMutations(ctx context.Context, table string) error {
	for {
		var n struct{ N uint64 }
		err := s.query(ctx, "SELECT count() AS n FROM system.mutations WHERE database = "+lit(s.opts.Database)+
			" AND table = "+lit(table)+" AND is_done = 0", func(row []byte) error { return json.Unmarshal(row, &n) })
		if err != nil || n.N == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(mutationPoll):
		}
	}
}

var partitionID = regexp.MustCompile(`^[0-9]+$`)

// dropEmpty drops the partitions whose every row the mutations deleted.
func (s *Store) dropEmpty(ctx context.Context) error {
	var parts []struct{ Table, Partition string }
	err := s.query(ctx, "SELECT table, partition FROM system.parts WHERE database = "+lit(s.opts.Database)+
		" AND active AND table IN ('exchanges', 'stats') GROUP BY table, partition HAVING sum(rows) = 0",
		func(row []byte) error {
			var p struct{ Table, Partition string }
			err := json.Unmarshal(row, &p)
			parts = append(parts, p)
			return err
		})
	if err != nil {
		return fmt.Errorf("empty partitions: %w", err)
	}
	for _, p := range parts {
		if !partitionID.MatchString(p.Partition) {
			return fmt.Errorf("partition %q of %s: not a day", p.Partition, p.Table)
		}
		if _, err := s.exec(ctx, "ALTER TABLE "+s.db+"."+p.Table+" DROP PARTITION "+p.Partition, nil); err != nil {
			return fmt.Errorf("drop partition %s of %s: %w", p.Partition, p.Table, err)
		}
	}
	return nil
}

// Size is the bytes of the database's active parts.
func (s *Store) Size(ctx context.Context) (int64, error) {
	var r struct{ B int64 }
	err := s.query(ctx, "SELECT toInt64(sum(bytes_on_disk)) AS b FROM system.parts WHERE database = "+
		lit(s.opts.Database)+" AND active", func(row []byte) error { return json.Unmarshal(row, &r) })
	return r.B, err
}
