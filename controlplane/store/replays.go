package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cameleer/cameleer/api"
)

var (
	bOriginals  = []byte("originals")
	bReplays    = []byte("replays")
	bReplayKeys = []byte("replay-keys")
)

// Original is what the control plane knows of an exchange's original,
// which only its runner holds: until when it is kept, whether it was
// evicted, and the replays of it.
type Original struct {
	Tenant      string `json:"tenant"`
	Environment string `json:"environment"`
	App         string `json:"app"`
	Exchange    string `json:"exchange"`
	Route       string `json:"route,omitempty"`
	// Start is when the exchange began, in microseconds since the Unix epoch.
	Start  int64  `json:"start,omitempty"`
	Runner string `json:"runner,omitempty"`
	// FailedAt is the node where the exchange failed, when a replay may
	// re-enter at its endpoint.
	FailedAt *api.NodeRef `json:"failedAt,omitempty"`
	// Until is when the runner evicts it at the latest (zero: not known
	// to be kept); Evicted is why it no longer is (api.Evicted*), at
	// EvictedAt.
	Until     time.Time `json:"until,omitzero"`
	Evicted   string    `json:"evicted,omitempty"`
	EvictedAt time.Time `json:"evictedAt,omitzero"`
	// Replays are the ids of its replays, oldest first.
	Replays []string `json:"replays,omitempty"`
}

// OriginalNote is what a runner said of an original: kept until Until, or
// evicted for Evicted, at At.
type OriginalNote struct {
	Environment, App, Exchange, Route string
	Start                             int64
	FailedAt                          *api.NodeRef
	Until                             time.Time
	Evicted                           string
	At                                time.Time
}

// Replay is one replay of an original: who asked, and how it went.
type Replay struct {
	ID          string `json:"id"`
	Tenant      string `json:"tenant"`
	Environment string `json:"environment"`
	App         string `json:"app"`
	// Exchange is the original's id; Replay the new exchange's, once run.
	Exchange string `json:"exchange"`
	Replay   string `json:"replay,omitempty"`
	// Key is the caller's Idempotency-Key, if it gave one.
	Key string `json:"key,omitempty"`
	// Token and Role are the caller's (APITokenID).
	Token  string `json:"token"`
	Role   string `json:"role"`
	Edited bool   `json:"edited,omitempty"`
	Forced bool   `json:"forced,omitempty"`
	// At is where it re-entered: api.ReplayAtNode, the endpoint of the
	// node the original failed at (Node); "" its route's start.
	At   string `json:"at,omitempty"`
	Node string `json:"node,omitempty"`
	// Bulk is the bulk replay it is part of, if any.
	Bulk string `json:"bulk,omitempty"`
	// Status is ReplayRunning until it ends: the new exchange's
	// (api.StatusCompleted, ...), or ReplayError when it never ran.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Warning says what the caller should know: the app was redeployed
	// since the original ran.
	Warning  string    `json:"warning,omitempty"`
	Created  time.Time `json:"created"`
	Finished time.Time `json:"finished,omitzero"`
}

// Replay states besides the new exchange's api status.
const (
	ReplayRunning = "running"
	ReplayError   = "error"
)

func originalKey(tenant, env, app, exchange string) []byte {
	return []byte(tenant + "\x00" + env + "\x00" + app + "\x00" + exchange)
}

func replayKey(tenant, id string) []byte { return []byte(tenant + "\x00" + id) }

// NoteOriginals applies what runner of tenant said of its originals, in
// order. Applying the same notes again changes nothing: a batch resent
// after a lost answer is harmless.
func (s *Store) NoteOriginals(tenant, runner string, notes []OriginalNote) error {
	if len(notes) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bOriginals)
		if err != nil {
			return err
		}
		for _, n := range notes {
			k := originalKey(tenant, n.Environment, n.App, n.Exchange)
			o := Original{Tenant: tenant, Environment: n.Environment, App: n.App, Exchange: n.Exchange}
			if raw := b.Get(k); raw != nil {
				if err := json.Unmarshal(raw, &o); err != nil {
					return err
				}
			}
			o.Runner = runner
			if n.Route != "" {
				o.Route, o.Start, o.FailedAt = n.Route, n.Start, n.FailedAt
			}
			if n.Evicted != "" {
				o.Evicted, o.EvictedAt = n.Evicted, n.At
			} else {
				o.Until, o.Evicted, o.EvictedAt = n.Until, "", time.Time{}
			}
			if err := put(b, string(k), o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("note originals of runner %s: %w", runner, err)
	}
	return nil
}

// Original is what is known of the original of an exchange; ErrNotFound
// when nothing is.
func (s *Store) Original(tenant, env, app, exchange string) (o Original, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOriginals)
		if b == nil {
			return ErrNotFound
		}
		o, err = get[Original](b, string(originalKey(tenant, env, app, exchange)))
		return err
	})
	return o, err
}

// BeginReplay records r as running, unless r.Key names a replay of the
// tenant already made: that one is answered, with again true, and nothing
// is recorded. admit sees the original (found false when nothing is known
// of it) and its replays, and refuses r with an error; all of it in one
// transaction, so two replays asked at once are admitted one after the
// other.
func (s *Store) BeginReplay(r Replay, admit func(o Original, found bool, prior []Replay) error) (out Replay, again bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		bo, err := tx.CreateBucketIfNotExists(bOriginals)
		if err != nil {
			return err
		}
		br, err := tx.CreateBucketIfNotExists(bReplays)
		if err != nil {
			return err
		}
		bk, err := tx.CreateBucketIfNotExists(bReplayKeys)
		if err != nil {
			return err
		}
		if r.Key != "" {
			if id := bk.Get(replayKey(r.Tenant, r.Key)); id != nil {
				out, err = get[Replay](br, string(replayKey(r.Tenant, string(id))))
				again = true
				return err
			}
		}
		ok := originalKey(r.Tenant, r.Environment, r.App, r.Exchange)
		o, err := get[Original](bo, string(ok))
		found := err == nil
		if err != nil && err != ErrNotFound {
			return err
		}
		if !found {
			o = Original{Tenant: r.Tenant, Environment: r.Environment, App: r.App, Exchange: r.Exchange}
		}
		prior, err := replaysIn(br, r.Tenant, o.Replays)
		if err != nil {
			return err
		}
		if err := admit(o, found, prior); err != nil {
			return err
		}
		r.Status = ReplayRunning
		o.Replays = append(o.Replays, r.ID)
		if err := put(br, string(replayKey(r.Tenant, r.ID)), r); err != nil {
			return err
		}
		if err := put(bo, string(ok), o); err != nil {
			return err
		}
		if r.Key != "" {
			if err := bk.Put(replayKey(r.Tenant, r.Key), []byte(r.ID)); err != nil {
				return err
			}
		}
		out = r
		return nil
	})
	return out, again, err
}

// FinishReplay records how the tenant's replay id ended, by change.
func (s *Store) FinishReplay(tenant, id string, change func(*Replay)) (r Replay, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bReplays)
		if b == nil {
			return ErrNotFound
		}
		if r, err = get[Replay](b, string(replayKey(tenant, id))); err != nil {
			return err
		}
		change(&r)
		return put(b, string(replayKey(tenant, id)), r)
	})
	if err != nil {
		return r, fmt.Errorf("finish replay %s: %w", id, err)
	}
	return r, nil
}

// GetReplay is one replay of the tenant.
func (s *Store) GetReplay(tenant, id string) (r Replay, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bReplays)
		if b == nil {
			return ErrNotFound
		}
		r, err = get[Replay](b, string(replayKey(tenant, id)))
		return err
	})
	return r, err
}

// Replays are the replays of the original of an exchange, oldest first.
func (s *Store) Replays(tenant, env, app, exchange string) (out []Replay, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		bo, br := tx.Bucket(bOriginals), tx.Bucket(bReplays)
		if bo == nil || br == nil {
			out = []Replay{}
			return nil
		}
		o, err := get[Original](bo, string(originalKey(tenant, env, app, exchange)))
		if err != nil && err != ErrNotFound {
			return err
		}
		out, err = replaysIn(br, tenant, o.Replays)
		return err
	})
	return out, err
}

// replaysIn are the tenant's replays of ids in b, those pruned left out.
func replaysIn(b *bolt.Bucket, tenant string, ids []string) ([]Replay, error) {
	out := make([]Replay, 0, len(ids))
	for _, id := range ids {
		r, err := get[Replay](b, string(replayKey(tenant, id)))
		if err == ErrNotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// EndRunningReplays ends every replay still running (a control plane
// stopped during it) as a ReplayError with msg, at now; it answers how many.
func (s *Store) EndRunningReplays(now time.Time, msg string) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bReplays)
		if b == nil {
			return nil
		}
		ended := map[string]Replay{}
		err := each(b, func(k []byte, r Replay) error {
			if r.Status == ReplayRunning {
				r.Status, r.Error, r.Finished = ReplayError, msg, now
				ended[string(k)] = r
			}
			return nil
		})
		if err != nil {
			return err
		}
		for k, r := range ended {
			if err := put(b, k, r); err != nil {
				return err
			}
		}
		n = len(ended)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("end the replays left running: %w", err)
	}
	return n, nil
}

var bBulks = []byte("bulk-replays")

// Bulk is a bulk replay: the failed exchanges of an app's route in a time
// window, replayed one by one at Rate a second, newest first.
type Bulk struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	Environment string    `json:"environment"`
	App         string    `json:"app"`
	Route       string    `json:"route"`
	Status      string    `json:"status"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Rate        int       `json:"rate"`
	Force       bool      `json:"force,omitempty"`
	Token       string    `json:"token"`
	Role        string    `json:"role"`
	// State is BulkRunning, BulkPaused, BulkCancelled or BulkDone.
	State string `json:"state"`
	// After is where the walk stands: the last exchange handled, its
	// start (microseconds) and id; zero before the first.
	AfterStart int64  `json:"afterStart,omitempty"`
	AfterID    string `json:"afterId,omitempty"`
	// What became of the exchanges handled: replayed (Completed or
	// Failed as their replays ended), Skipped (replayed successfully
	// before, or no longer kept), Errors (never ran).
	Completed int       `json:"completed"`
	Failed    int       `json:"failed"`
	Skipped   int       `json:"skipped"`
	Errors    int       `json:"errors"`
	LastError string    `json:"lastError,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
}

// Bulk states.
const (
	BulkRunning   = "running"
	BulkPaused    = "paused"
	BulkCancelled = "cancelled"
	BulkDone      = "done"
)

// CreateBulk records b, unless admit, seeing the bulks of the tenant,
// refuses it.
func (s *Store) CreateBulk(b Bulk, admit func(others []Bulk) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bBulks)
		if err != nil {
			return err
		}
		var others []Bulk
		err = each(bk, func(k []byte, o Bulk) error {
			if o.Tenant == b.Tenant {
				others = append(others, o)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := admit(others); err != nil {
			return err
		}
		return put(bk, string(replayKey(b.Tenant, b.ID)), b)
	})
}

// Bulk is one bulk replay of the tenant.
func (s *Store) Bulk(tenant, id string) (b Bulk, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bBulks)
		if bk == nil {
			return ErrNotFound
		}
		b, err = get[Bulk](bk, string(replayKey(tenant, id)))
		return err
	})
	return b, err
}

// Bulks are the bulk replays keep takes, of every tenant, oldest first.
func (s *Store) Bulks(keep func(Bulk) bool) ([]Bulk, error) {
	out := []Bulk{}
	err := s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bBulks)
		if bk == nil {
			return nil
		}
		return each(bk, func(_ []byte, b Bulk) error {
			if keep(b) {
				out = append(out, b)
			}
			return nil
		})
	})
	return out, err
}

// UpdateBulk changes the tenant's bulk replay id by change, which may
// refuse with an error.
func (s *Store) UpdateBulk(tenant, id string, change func(*Bulk) error) (b Bulk, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bBulks)
		if bk == nil {
			return ErrNotFound
		}
		if b, err = get[Bulk](bk, string(replayKey(tenant, id))); err != nil {
			return err
		}
		if err := change(&b); err != nil {
			return err
		}
		return put(bk, string(replayKey(tenant, id)), b)
	})
	return b, err
}

// PruneReplays removes what is known of originals gone before before
// (evicted then, or kept until then), with their replays and the
// Idempotency-Keys of those, and the bulk replays that ended before it.
func (s *Store) PruneReplays(before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		bo, br, bk, bb := tx.Bucket(bOriginals), tx.Bucket(bReplays), tx.Bucket(bReplayKeys), tx.Bucket(bBulks)
		gone := map[string]bool{} // replay keys (tenant, id) removed
		if bo != nil {
			var keys [][]byte
			err := each(bo, func(k []byte, o Original) error {
				if o.Evicted != "" && o.EvictedAt.Before(before) || !o.Until.IsZero() && o.Until.Before(before) {
					keys = append(keys, k)
					for _, id := range o.Replays {
						gone[string(replayKey(o.Tenant, id))] = true
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			n = len(keys)
			if err := deleteKeys(bo, keys); err != nil {
				return err
			}
		}
		if br != nil {
			for k := range gone {
				if err := br.Delete([]byte(k)); err != nil {
					return err
				}
			}
		}
		if bk != nil {
			var keys [][]byte
			err := bk.ForEach(func(k, id []byte) error {
				tenant, _, _ := strings.Cut(string(k), "\x00")
				if gone[string(replayKey(tenant, string(id)))] {
					keys = append(keys, k)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if err := deleteKeys(bk, keys); err != nil {
				return err
			}
		}
		if bb != nil {
			var keys [][]byte
			err := each(bb, func(k []byte, b Bulk) error {
				if (b.State == BulkDone || b.State == BulkCancelled) && b.Updated.Before(before) {
					keys = append(keys, k)
				}
				return nil
			})
			if err != nil {
				return err
			}
			return deleteKeys(bb, keys)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune the replays: %w", err)
	}
	return n, nil
}
