package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
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
				o.Route, o.Start = n.Route, n.Start
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
		prior := make([]Replay, 0, len(o.Replays))
		for _, id := range o.Replays {
			p, err := get[Replay](br, string(replayKey(r.Tenant, id)))
			if err == ErrNotFound {
				continue // pruned
			}
			if err != nil {
				return err
			}
			prior = append(prior, p)
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
func (s *Store) Replays(tenant, env, app, exchange string) ([]Replay, error) {
	o, err := s.Original(tenant, env, app, exchange)
	if err == ErrNotFound {
		return []Replay{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]Replay, 0, len(o.Replays))
	for _, id := range o.Replays {
		r, err := s.GetReplay(tenant, id)
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
