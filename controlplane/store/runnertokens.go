package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bRunnerTokenIndex indexes the one-time tokens, so that making one costs
// the same however many were made before: by expiry ("e/" + expiry + hash
// -> tenant), to purge the expired ones in order, and the open ones (not
// used yet) by tenant ("o/" + tenant + "/" + hash), to count them.
var bRunnerTokenIndex = []byte("runner-token-index")

func expiryKey(t RunnerToken) []byte {
	k := binary.BigEndian.AppendUint64([]byte("e/"), uint64(t.Expires.UnixNano()))
	return append(k, t.Hash...)
}

func openKey(t RunnerToken) []byte { return []byte("o/" + t.Tenant + "/" + t.Hash) }

// indexRunnerTokens makes the index of a state file from before it.
func indexRunnerTokens(tx *bolt.Tx) error {
	if tx.Bucket(bRunnerTokenIndex) != nil {
		return nil
	}
	idx, err := tx.CreateBucket(bRunnerTokenIndex)
	if err != nil {
		return err
	}
	return each(tx.Bucket(bRunnerTokens), func(_ []byte, t RunnerToken) error { return index(idx, t) })
}

func index(idx *bolt.Bucket, t RunnerToken) error {
	if err := idx.Put(expiryKey(t), []byte(t.Tenant)); err != nil {
		return err
	}
	if !t.Used.IsZero() {
		return nil
	}
	return idx.Put(openKey(t), nil)
}

// CreateRunnerToken stores a one-time token's hash, unless its tenant has
// max tokens that are neither used nor expired. Expired tokens of every
// tenant go at the same time: they redeem nothing, not even again.
func (s *Store) CreateRunnerToken(t RunnerToken, max int, now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bTenants).Get([]byte(t.Tenant)) == nil {
			return ErrNotFound
		}
		tokens, idx := tx.Bucket(bRunnerTokens), tx.Bucket(bRunnerTokenIndex)
		if err := purgeExpired(tokens, idx, now); err != nil {
			return err
		}
		open := 0
		prefix := []byte("o/" + t.Tenant + "/")
		c := idx.Cursor()
		for k, _ := c.Seek(prefix); len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			open++
		}
		if open >= max {
			return fmt.Errorf("%w: %d one-time tokens waiting to be redeemed, the most one tenant may have; let some expire first", ErrQuota, max)
		}
		if err := put(tokens, t.Hash, t); err != nil {
			return err
		}
		return index(idx, t)
	})
}

// purgeExpired removes the tokens that expired before now, oldest first,
// and stops at the first that did not.
func purgeExpired(tokens, idx *bolt.Bucket, now time.Time) error {
	var gone [][]byte
	c := idx.Cursor()
	for k, tenant := c.Seek([]byte("e/")); len(k) > 10 && string(k[:2]) == "e/"; k, tenant = c.Next() {
		if int64(binary.BigEndian.Uint64(k[2:10])) >= now.UnixNano() {
			break
		}
		hash := string(k[10:])
		gone = append(gone, k, openKey(RunnerToken{Tenant: string(tenant), Hash: hash}))
		if err := tokens.Delete([]byte(hash)); err != nil {
			return err
		}
	}
	return deleteKeys(idx, gone)
}
