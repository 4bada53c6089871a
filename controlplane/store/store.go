// Package store keeps the control plane's state in a bbolt file in its data
// dir: tenants, API tokens, one-time runner tokens (indexed by expiry and
// tenant), runners, artifacts' records, environments (with their sealed
// secrets and egress), deployments and apps. Secrets are stored only as
// SHA-256 hashes or sealed. Every change is one bbolt transaction, so a
// killed control plane loses nothing it acknowledged; what a change must
// check against the state (a quota, an app's runner) is checked in the
// same transaction, by a function the caller gives.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/cameleer/cameleer/api"
)

// Errors callers tell apart.
var (
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists")
	ErrTokenUnknown = errors.New("unknown one-time token")
	ErrTokenUsed    = errors.New("one-time token already used")
	ErrTokenExpired = errors.New("one-time token expired")
	// ErrDamaged is a state file that cannot be opened as it is.
	ErrDamaged = errors.New("the state file is damaged")
	// ErrQuota is a write that would take a tenant past one of its quotas.
	ErrQuota = errors.New("over quota")
	// ErrLastAdmin is the removal of the only admin token.
	ErrLastAdmin = errors.New("the last admin token")
)

var (
	bTenants      = []byte("tenants")
	bAPITokens    = []byte("api-tokens")
	bRunnerTokens = []byte("runner-tokens")
	bRunners      = []byte("runners")
	bMeta         = []byte("meta")
)

// Tenant is a customer.
type Tenant struct {
	Name    string    `json:"name"`
	Tier    string    `json:"tier"`
	Created time.Time `json:"created"`
	// RetentionDays is how long the tenant's telemetry is kept (0: the
	// control plane's default).
	RetentionDays int `json:"retentionDays,omitempty"`
}

// APIToken authenticates API calls; Tenant "" is the bootstrap admin.
type APIToken struct {
	Hash   string `json:"hash"`
	Tenant string `json:"tenant,omitempty"`
	// Role is a tenant token's: viewer, operator or admin; "" (tokens made
	// before roles were) is admin.
	Role    string    `json:"role,omitempty"`
	Created time.Time `json:"created"`
}

// RunnerToken is a one-time registration token.
type RunnerToken struct {
	Hash    string    `json:"hash"`
	Tenant  string    `json:"tenant"`
	Expires time.Time `json:"expires"`
	Used    time.Time `json:"used,omitzero"`
	// Runner is the id of the runner it registered, and Key the SHA-256 of
	// that runner's public key (PKIX DER, hex).
	Runner string `json:"runner,omitempty"`
	Key    string `json:"key,omitempty"`
}

// Runner is a registered runner.
type Runner struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"tenant"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Serial and NotAfter are the current client certificate's.
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
	// PrevSerial is the certificate the runner held when it last renewed,
	// accepted (until it expires) until the runner shows, in a heartbeat
	// or by connecting, that it holds the new one: a renewal whose answer
	// was lost leaves the runner holding it.
	PrevSerial string    `json:"prevSerial,omitempty"`
	Revoked    bool      `json:"revoked,omitempty"`
	LastSeen   time.Time `json:"lastSeen,omitzero"`
	Version    string    `json:"version,omitempty"`
}

// Store is an open state file.
type Store struct{ db *bolt.DB }

// Open opens (creating) the bbolt file at path. A damaged file is an
// error, never a crash.
func Open(path string) (st *Store, err error) {
	if err := checkLength(path); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// bbolt panics on some damage it meets reading pages.
	defer func() {
		if p := recover(); p != nil {
			st, err = nil, fmt.Errorf("open store %s: %w (%v); restore it from a backup", path, ErrDamaged, p)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: another control plane has it open", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bTenants, bAPITokens, bRunnerTokens, bRunners, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return indexRunnerTokens(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func get[T any](b *bolt.Bucket, key string) (T, error) {
	var v T
	raw := b.Get([]byte(key))
	if raw == nil {
		return v, ErrNotFound
	}
	return v, json.Unmarshal(raw, &v)
}

// each decodes every value of b, in key order, and calls f with it and its
// key.
func each[T any](b *bolt.Bucket, f func(key []byte, v T) error) error {
	return b.ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		return f(k, v)
	})
}

// list decodes the values of bucket that keep takes, in key order.
func list[T any](db *bolt.DB, bucket []byte, keep func(T) bool) ([]T, error) {
	var out []T
	err := db.View(func(tx *bolt.Tx) error {
		return each(tx.Bucket(bucket), func(_ []byte, v T) error {
			if keep(v) {
				out = append(out, v)
			}
			return nil
		})
	})
	return out, err
}

// deleteKeys removes keys from b: keys found in a walk, which must not
// change what it walks.
func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func put(b *bolt.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// CreateTenant adds a tenant; ErrExists if the name is taken.
func (s *Store) CreateTenant(t Tenant) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bTenants)
		if b.Get([]byte(t.Name)) != nil {
			return ErrExists
		}
		return put(b, t.Name, t)
	})
}

// Tenant reads a tenant.
func (s *Store) Tenant(name string) (t Tenant, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		t, err = get[Tenant](tx.Bucket(bTenants), name)
		return err
	})
	return t, err
}

// SetRetention sets how many days a tenant's telemetry is kept (0: the
// control plane's default).
func (s *Store) SetRetention(name string, days int) (t Tenant, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if t, err = get[Tenant](tx.Bucket(bTenants), name); err != nil {
			return err
		}
		t.RetentionDays = days
		return put(tx.Bucket(bTenants), name, t)
	})
	return t, err
}

// Tenants lists every tenant by name.
func (s *Store) Tenants() ([]Tenant, error) {
	return list(s.db, bTenants, func(Tenant) bool { return true })
}

// Meta reads a control-plane setting; "" if unset.
func (s *Store) Meta(key string) (string, error) {
	var v string
	err := s.db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bMeta).Get([]byte(key)))
		return nil
	})
	return v, err
}

// SetMeta writes a control-plane setting.
func (s *Store) SetMeta(key, value string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put([]byte(key), []byte(value)) })
}

// CreateAPIToken stores a token's hash, unless its tenant (or the admin,
// Tenant "") has max tokens already.
func (s *Store) CreateAPIToken(t APIToken, max int) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if t.Tenant != "" && tx.Bucket(bTenants).Get([]byte(t.Tenant)) == nil {
			return ErrNotFound
		}
		b := tx.Bucket(bAPITokens)
		n := 0
		err := each(b, func(_ []byte, o APIToken) error {
			if o.Tenant == t.Tenant {
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n >= max {
			return fmt.Errorf("%w: %d API tokens, the most one tenant may have; revoke one first", ErrQuota, max)
		}
		return put(b, t.Hash, t)
	})
}

// SetAdminToken makes t the only admin token and marks the admin token
// made (meta key admin-token-created = mark), in one transaction: a first
// start cut short leaves no token behind that nobody was told, and a
// rotation leaves exactly the new one.
func (s *Store) SetAdminToken(t APIToken, mark string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bAPITokens)
		var old [][]byte
		err := each(b, func(k []byte, o APIToken) error {
			if o.Tenant == "" {
				old = append(old, k)
			}
			return nil
		})
		if err == nil {
			err = deleteKeys(b, old)
		}
		if err != nil {
			return err
		}
		t.Tenant = ""
		if err := put(b, t.Hash, t); err != nil {
			return err
		}
		return tx.Bucket(bMeta).Put([]byte("admin-token-created"), []byte(mark))
	})
}

// APIToken finds a token by its hash.
func (s *Store) APIToken(hash string) (t APIToken, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		t, err = get[APIToken](tx.Bucket(bAPITokens), hash)
		return err
	})
	return t, err
}

// APITokenID names a token without giving it away: the start of its hash.
func APITokenID(hash string) string { return hash[:min(len(hash), 16)] }

// APITokens lists a tenant's API tokens.
func (s *Store) APITokens(tenant string) ([]APIToken, error) {
	return list(s.db, bAPITokens, func(t APIToken) bool { return t.Tenant == tenant })
}

// DeleteAPIToken removes the tenant's API token whose APITokenID is id;
// from then on it authenticates nothing. The last admin token (tenant "")
// stays: ErrLastAdmin.
func (s *Store) DeleteAPIToken(tenant, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bAPITokens)
		var key []byte
		n := 0
		err := each(b, func(k []byte, t APIToken) error {
			if t.Tenant != tenant {
				return nil
			}
			n++
			if APITokenID(t.Hash) == id {
				key = k
			}
			return nil
		})
		switch {
		case err != nil:
			return err
		case key == nil:
			return ErrNotFound
		case tenant == "" && n == 1:
			return ErrLastAdmin
		}
		return b.Delete(key)
	})
}

// Redeem uses up the one-time token with hash and registers the runner that
// register makes for its tenant, in one transaction: a token registers at
// most one runner, however many redeem it at once. key is the SHA-256 of
// the runner's public key. The same key may redeem a used token again until
// it expires: the host that lost the answer (a dropped connection, a killed
// process) retries, and register gets the runner it registered, to sign it a
// new certificate. Only the holder of the key can do that: the request's CSR
// is signed with it.
func (s *Store) Redeem(hash, key string, now time.Time, register func(tenant string, again *Runner) (Runner, error)) (Runner, error) {
	var r Runner
	err := s.db.Update(func(tx *bolt.Tx) error {
		tokens, runners := tx.Bucket(bRunnerTokens), tx.Bucket(bRunners)
		t, err := get[RunnerToken](tokens, hash)
		switch {
		case errors.Is(err, ErrNotFound):
			return ErrTokenUnknown
		case err != nil:
			return err
		case !t.Used.IsZero() && (key == "" || t.Key != key):
			return ErrTokenUsed
		case now.After(t.Expires):
			return ErrTokenExpired
		case !t.Used.IsZero():
			old, err := get[Runner](runners, t.Runner)
			if err != nil || old.Revoked {
				return ErrTokenUsed
			}
			if r, err = register(t.Tenant, &old); err != nil {
				return err
			}
			if r.ID != old.ID {
				return fmt.Errorf("register again: runner %s became %s", old.ID, r.ID)
			}
			return put(runners, r.ID, r)
		}
		if r, err = register(t.Tenant, nil); err != nil {
			return err
		}
		if runners.Get([]byte(r.ID)) != nil {
			return ErrExists
		}
		if err := runnerNameFree(runners, r.Tenant, r.Name); err != nil {
			return err
		}
		t.Used, t.Runner, t.Key = now, r.ID, key
		if err := put(tokens, hash, t); err != nil {
			return err
		}
		if err := tx.Bucket(bRunnerTokenIndex).Delete(openKey(t)); err != nil {
			return err
		}
		return put(runners, r.ID, r)
	})
	return r, err
}

func runnerNameFree(b *bolt.Bucket, tenant, name string) error {
	return each(b, func(_ []byte, r Runner) error {
		if r.Tenant == tenant && r.Name == name && !r.Revoked {
			return fmt.Errorf("a runner named %q: %w", name, ErrExists)
		}
		return nil
	})
}

// Runner reads a runner.
func (s *Store) Runner(id string) (r Runner, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		r, err = get[Runner](tx.Bucket(bRunners), id)
		return err
	})
	return r, err
}

// Runners lists a tenant's runners.
func (s *Store) Runners(tenant string) ([]Runner, error) {
	return list(s.db, bRunners, func(r Runner) bool { return r.Tenant == tenant })
}

// UpdateRunner changes a runner in one transaction.
func (s *Store) UpdateRunner(id string, change func(*Runner) error) (Runner, error) {
	var r Runner
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bRunners)
		var err error
		if r, err = get[Runner](b, id); err != nil {
			return err
		}
		if err := change(&r); err != nil {
			return err
		}
		return put(b, id, r)
	})
	return r, err
}

var bArtifacts = []byte("artifacts")

// Artifact is an uploaded app version, stored by its SHA-256.
type Artifact struct {
	Tenant     string    `json:"tenant"`
	App        string    `json:"app"`
	SHA256     string    `json:"sha256"`
	Size       int64     `json:"size"`
	MainClass  string    `json:"mainClass,omitempty"`
	SpringBoot bool      `json:"springBoot"`
	Uploaded   time.Time `json:"uploaded"`
}

func artifactKey(tenant, app, sha string) string { return tenant + "/" + app + "/" + sha }

// ArtifactQuota bounds a tenant's artifacts.
type ArtifactQuota struct {
	Count int
	Bytes int64
}

// AddArtifact records an artifact of an app, unless it would take the
// tenant past q; uploading the same bytes again keeps the first record and
// reports false.
func (s *Store) AddArtifact(a Artifact, q ArtifactQuota) (bool, error) {
	added := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bArtifacts)
		if err != nil {
			return err
		}
		if tx.Bucket(bTenants).Get([]byte(a.Tenant)) == nil {
			return ErrNotFound
		}
		key := artifactKey(a.Tenant, a.App, a.SHA256)
		if b.Get([]byte(key)) != nil {
			return nil
		}
		if err := artifactRoom(b, a, q); err != nil {
			return err
		}
		added = true
		return put(b, key, a)
	})
	return added, err
}

// artifactRoom refuses a tenant's artifact that would be one too many, or
// too many bytes.
func artifactRoom(b *bolt.Bucket, a Artifact, q ArtifactQuota) error {
	n, size := 0, a.Size
	err := scan(b, a.Tenant, func(o Artifact) {
		n++
		size += o.Size
	})
	switch {
	case err != nil:
		return err
	case n >= q.Count:
		return fmt.Errorf("%w: %d artifacts, the most one tenant may have", ErrQuota, q.Count)
	case size > q.Bytes:
		return fmt.Errorf("%w: artifacts of %d MiB in all, over the tenant's %d MiB", ErrQuota, size>>20, q.Bytes>>20)
	}
	return nil
}

// ArtifactRoom tells whether tenant can add an artifact of size bytes, so
// an upload over quota is refused before it is read.
func (s *Store) ArtifactRoom(tenant string, size int64, q ArtifactQuota) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bArtifacts)
		if b == nil {
			return nil
		}
		return artifactRoom(b, Artifact{Tenant: tenant, Size: size}, q)
	})
}

// Artifacts lists an app's artifacts.
func (s *Store) Artifacts(tenant, app string) ([]Artifact, error) {
	var out []Artifact
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bArtifacts)
		if b == nil {
			return nil
		}
		return scan(b, tenant+"/"+app, func(a Artifact) { out = append(out, a) })
	})
	return out, err
}

var bEnvironments = []byte("environments")

// Environment is where a tenant's apps run: a namespace on its runners.
type Environment struct {
	Tenant  string    `json:"tenant"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Env is the config overlay's plain values.
	Env map[string]string `json:"env,omitempty"`
	// Secrets are sealed values (see controlplane/secrets), by name.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Egress is what its apps may reach outside it; none: only DNS.
	Egress api.Egress `json:"egress,omitzero"`
}

func envKey(tenant, name string) string { return tenant + "/" + name }

// CreateEnvironment adds an environment after allow approves the tenant's
// current ones, in one transaction (so two requests cannot both pass a
// limit).
func (s *Store) CreateEnvironment(e Environment, allow func(Tenant, []Environment) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bEnvironments)
		if err != nil {
			return err
		}
		t, err := get[Tenant](tx.Bucket(bTenants), e.Tenant)
		if err != nil {
			return err
		}
		if b.Get([]byte(envKey(e.Tenant, e.Name))) != nil {
			return ErrExists
		}
		existing, err := environments(b, e.Tenant)
		if err != nil {
			return err
		}
		if err := allow(t, existing); err != nil {
			return err
		}
		return put(b, envKey(e.Tenant, e.Name), e)
	})
}

func environments(b *bolt.Bucket, tenant string) ([]Environment, error) {
	var out []Environment
	err := scan(b, tenant, func(e Environment) { out = append(out, e) })
	return out, err
}

// Environments lists a tenant's environments.
func (s *Store) Environments(tenant string) ([]Environment, error) {
	var out []Environment
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEnvironments)
		if b == nil {
			return nil
		}
		var err error
		out, err = environments(b, tenant)
		return err
	})
	return out, err
}

// Environment reads one environment.
func (s *Store) Environment(tenant, name string) (e Environment, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEnvironments)
		if b == nil {
			return ErrNotFound
		}
		e, err = get[Environment](b, envKey(tenant, name))
		return err
	})
	return e, err
}

// UpdateEnvironment changes an environment in one transaction.
func (s *Store) UpdateEnvironment(tenant, name string, change func(*Environment) error) (Environment, error) {
	var e Environment
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEnvironments)
		if b == nil {
			return ErrNotFound
		}
		var err error
		if e, err = get[Environment](b, envKey(tenant, name)); err != nil {
			return err
		}
		if err := change(&e); err != nil {
			return err
		}
		return put(b, envKey(tenant, name), e)
	})
	return e, err
}

// checkLength refuses a bbolt file shorter than its newest intact meta page
// says it is: bbolt would map it and die of SIGBUS reading past its end.
// The meta page (bbolt's internal/common/meta.go): after a 16-byte page
// header, magic, version (2), page size, flags (4 bytes each), root bucket (16),
// freelist page, high-water page id, transaction id, and an FNV-64a
// checksum of what comes before it (8 each), little-endian.
func checkLength(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err // an empty file is a new store
	}
	type meta struct{ pageSize, pages, txid uint64 }
	read := func(off int64) (meta, bool) {
		b := make([]byte, 16+64)
		if _, err := f.ReadAt(b, off); err != nil {
			return meta{}, false
		}
		m := b[16:]
		h := fnv.New64a()
		h.Write(m[:56])
		le := binary.LittleEndian
		if le.Uint32(m[0:]) != 0xED0CDAED || le.Uint32(m[4:]) != 2 || h.Sum64() != le.Uint64(m[56:]) {
			return meta{}, false
		}
		return meta{uint64(le.Uint32(m[8:])), le.Uint64(m[40:]), le.Uint64(m[48:])}, true
	}
	m0, ok0 := read(0)
	var m1 meta
	ok1 := false
	if ok0 {
		m1, ok1 = read(int64(m0.pageSize))
	} else {
		// Where bbolt looks for the second meta page when the first is
		// damaged: at every page size it may have been made with.
		for size := int64(1 << 10); size <= 16<<20 && !ok1; size *= 2 {
			m1, ok1 = read(size)
			ok1 = ok1 && int64(m1.pageSize) == size
		}
	}
	if !ok0 && !ok1 {
		return fmt.Errorf("%w: not a state file, or no intact meta page in its %d bytes; restore it from a backup", ErrDamaged, fi.Size())
	}
	m := m0
	if !ok0 || ok1 && m1.txid > m0.txid {
		m = m1
	}
	if need := m.pages * m.pageSize; uint64(fi.Size()) < need {
		return fmt.Errorf("%w: truncated (%d bytes; its last commit needs %d); restore it from a backup", ErrDamaged, fi.Size(), need)
	}
	return nil
}
