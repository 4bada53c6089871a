package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bAudit = []byte("audit")

// controlPlaneLog names the audit log of what belongs to no tenant
// (tenants, admin tokens): a name no tenant can have.
const controlPlaneLog = "/"

// AuditRecord is one call that changed something, or tried to: who made it,
// when, what it asked and how it ended. It never holds a request's body
// (config and secrets travel in them).
type AuditRecord struct {
	// ID orders a log's records, from 1; the API pages by it.
	ID     uint64    `json:"id"`
	Time   time.Time `json:"time"`
	Tenant string    `json:"tenant,omitempty"`
	// Token is the caller's API token id (store.APITokenID), Role its role.
	Token string `json:"token"`
	Role  string `json:"role"`
	// Action is the route called ("POST /api/v1/tenants/{tenant}/..."),
	// Path the path it was called on.
	Action string `json:"action"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	// Detail is what the action adds (a replay's original, its outcome).
	Detail map[string]string `json:"detail,omitempty"`
}

// AppendAudit adds r to its tenant's log ("": the control plane's), which
// keeps its last keep records: the oldest goes as a new one comes.
func (s *Store) AppendAudit(r AuditRecord, keep int) (AuditRecord, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bAudit)
		if err != nil {
			return err
		}
		b, err := root.CreateBucketIfNotExists([]byte(auditLog(r.Tenant)))
		if err != nil {
			return err
		}
		if r.ID, err = b.NextSequence(); err != nil {
			return err
		}
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(auditKey(r.ID), raw); err != nil {
			return err
		}
		if keep > 0 && r.ID > uint64(keep) {
			return b.Delete(auditKey(r.ID - uint64(keep)))
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("append to the audit log: %w", err)
	}
	return r, nil
}

// Audit lists up to limit records of tenant's log ("": the control
// plane's) after the one with id after, oldest first.
func (s *Store) Audit(tenant string, after uint64, limit int) ([]AuditRecord, error) {
	return s.readAudit(tenant, limit, func(c *bolt.Cursor) ([]byte, []byte) { return c.Seek(auditKey(after + 1)) }, (*bolt.Cursor).Next)
}

// readAudit reads up to limit records of tenant's log from where first
// puts the cursor, going on with next.
func (s *Store) readAudit(tenant string, limit int, first, next func(*bolt.Cursor) ([]byte, []byte)) ([]AuditRecord, error) {
	out := []AuditRecord{}
	err := s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bAudit)
		if root == nil {
			return nil
		}
		b := root.Bucket([]byte(auditLog(tenant)))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := first(c); k != nil && len(out) < limit; k, v = next(c) {
			var r AuditRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

func auditLog(tenant string) string {
	if tenant == "" {
		return controlPlaneLog
	}
	return tenant
}

func auditKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, id)
}

// AuditNewest lists up to limit records of tenant's log ("": the control
// plane's) before the one with id before (0: from the newest), newest
// first: what a reader of the log wants to see first.
func (s *Store) AuditNewest(tenant string, before uint64, limit int) ([]AuditRecord, error) {
	return s.readAudit(tenant, limit, func(c *bolt.Cursor) ([]byte, []byte) {
		// The first record below before: the one before where before
		// would be, or the last when every record is below it.
		if before != 0 {
			if at, _ := c.Seek(auditKey(before)); at != nil {
				return c.Prev()
			}
		}
		return c.Last()
	}, (*bolt.Cursor).Prev)
}
