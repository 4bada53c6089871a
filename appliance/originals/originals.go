// Package originals keeps, on the runner's host, the messages failed
// exchanges entered their routes with, unredacted, so that they can be
// replayed: encrypted with a key of the host's (AES-256-GCM; the key file
// is 0600), one file per original, bounded in bytes and in age per
// environment. They never leave the host but into a replay; the control
// plane learns only that an exchange is replayable, until when, and what
// was evicted.
package originals

import (
	"cmp"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/internal/atomicfile"
	"github.com/cameleer/cameleer/internal/keyfile"
)

// Bounds are what one environment's originals may take: at most MaxBytes
// on disk (the oldest go first to make room), none older than MaxAge.
type Bounds struct {
	MaxBytes int64
	MaxAge   time.Duration
}

// Why an original was evicted: api's reasons.
const (
	EvictedAge   = api.EvictedAge
	EvictedBytes = api.EvictedBytes
	// EvictedDamaged: found damaged when the store opened (App and Exchange unknown).
	EvictedDamaged = api.EvictedDamaged
	// EvictedDeleted: its app was deleted.
	EvictedDeleted = api.EvictedDeleted
)

// Evicted is an original the store no longer has, and why.
type Evicted struct {
	Environment, App, Exchange, Reason string
}

// Stored is an original with where it came from and when it was kept.
type Stored struct {
	Environment string    `json:"-"`
	App         string    `json:"app"`
	Instance    string    `json:"instance"`
	Kept        time.Time `json:"kept"`
	api.Original
}

// ErrNotFound: the store has no such original (never kept, or evicted).
var ErrNotFound = errors.New("no stored original")

var errDamaged = errors.New("damaged: not an original this store wrote")

// magic starts every file: the format's name and version.
const magic = "cameleer-original-1\n"

// Store is the originals of one runner.
type Store struct {
	dir    string
	aead   cipher.AEAD
	bounds func(env string) Bounds

	mu sync.Mutex
	// envs holds each environment's files, oldest first, and their bytes.
	envs map[string]*envFiles
	// damaged are the files found damaged at Open, told by the first Sweep.
	damaged []Evicted
}

type envFiles struct {
	files []file
	bytes int64
}

// file is one original on disk: name is "<kept, Unix ms>-<id>", where id
// is fileID of its app and exchange.
type file struct {
	name          string
	id            string
	app, exchange string
	kept          int64
	size          int64
}

// head is a file's part in clear: whose original it is, so that the store
// can index and evict without the key. Ids and names are no secret: the
// control plane has them from the traces.
type head struct {
	App      string `json:"app"`
	Exchange string `json:"exchange"`
}

// Open opens the store in dir with the key at keyPath (made on first use),
// bounding each environment's originals by bounds.
func Open(dir, keyPath string, bounds func(env string) Bounds) (*Store, error) {
	key, err := keyfile.Load(keyPath, "originals' key", "without it the stored originals cannot be read")
	if err != nil {
		return nil, err
	}
	aead, err := keyfile.GCM(key)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, aead: aead, bounds: bounds, envs: map[string]*envFiles{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open the originals: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open the originals: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || api.ValidName(e.Name()) != nil {
			continue
		}
		if err := s.load(e.Name()); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// load indexes an environment's directory: names only, nothing is read.
func (s *Store) load(env string) error {
	dir := filepath.Join(s.dir, env)
	// A process killed while writing leaves a temporary file, never half an original.
	if _, err := atomicfile.RemoveTemps(dir); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("open the originals: %w", err)
	}
	ef := &envFiles{}
	for _, e := range ents {
		f, ok := parseName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("open the originals: %w", err)
		}
		f.size = info.Size()
		h, _, _, err := readHead(filepath.Join(dir, e.Name()), s.aead.NonceSize())
		if errors.Is(err, errDamaged) {
			// Of no use to anyone: gone, and said at the next Sweep.
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("open the originals: %w", err)
			}
			s.damaged = append(s.damaged, Evicted{Environment: env, Reason: EvictedDamaged})
			continue
		}
		if err != nil {
			return err
		}
		f.app, f.exchange = h.App, h.Exchange
		ef.files = append(ef.files, f)
		ef.bytes += f.size
	}
	slices.SortFunc(ef.files, func(a, b file) int { return cmp.Compare(a.kept, b.kept) })
	s.envs[env] = ef
	return nil
}

func parseName(name string) (file, bool) {
	ms, id, ok := strings.Cut(name, "-")
	kept, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || len(id) != 2*idBytes {
		return file{}, false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return file{}, false
	}
	return file{name: name, id: id, kept: kept}, true
}

const idBytes = 20

// fileID names an app's exchange on disk without showing either.
func fileID(app, exchange string) string {
	h := sha256.Sum256([]byte(app + "\x00" + exchange))
	return hex.EncodeToString(h[:idBytes])
}

// additional binds a file's contents to the original it is: a file copied
// under another's name, or another environment's, does not open.
func additional(env string, h []byte) []byte {
	return append([]byte(env+"\x00"), h...)
}

// Put keeps o, pulled from instance of app in env at now, unless it is
// kept already (a pull repeated after a restart). It answers until when it
// will be kept at most, and what made room for it; an original that
// alone is past its environment's bound is not kept and is itself evicted.
func (s *Store) Put(env, app, instance string, o api.Original, now time.Time) (time.Time, []Evicted, error) {
	if err := check(env, app, o.Exchange); err != nil {
		return time.Time{}, nil, err
	}
	b := s.bounds(env)
	id := fileID(app, o.Exchange)
	s.mu.Lock()
	defer s.mu.Unlock()
	ef := s.envs[env]
	if ef == nil {
		ef = &envFiles{}
		s.envs[env] = ef
	}
	if i := ef.find(id); i >= 0 {
		return time.UnixMilli(ef.files[i].kept).Add(b.MaxAge), nil, nil
	}
	plain, err := json.Marshal(Stored{App: app, Instance: instance, Kept: now, Original: o})
	if err != nil {
		return time.Time{}, nil, err
	}
	h, _ := json.Marshal(head{App: app, Exchange: o.Exchange})
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	sealed := binary.BigEndian.AppendUint16([]byte(magic), uint16(len(h)))
	sealed = append(append(sealed, h...), nonce...)
	sealed = s.aead.Seal(sealed, nonce, plain, additional(env, h))
	if int64(len(sealed)) > b.MaxBytes {
		return time.Time{}, []Evicted{{Environment: env, App: app, Exchange: o.Exchange, Reason: EvictedBytes}}, nil
	}
	// Room first: a crash between the two leaves fewer originals, never more than the bound.
	var evicted []Evicted
	for ef.bytes+int64(len(sealed)) > b.MaxBytes && len(ef.files) > 0 {
		ev, err := s.remove(env, ef, 0, EvictedBytes)
		if err != nil {
			return time.Time{}, evicted, err
		}
		evicted = append(evicted, ev)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, env), 0o700); err != nil {
		return time.Time{}, evicted, fmt.Errorf("keep an original: %w", err)
	}
	f := file{name: strconv.FormatInt(now.UnixMilli(), 10) + "-" + id, id: id, app: app, exchange: o.Exchange, kept: now.UnixMilli(), size: int64(len(sealed))}
	if _, err := atomicfile.WriteFile(filepath.Join(s.dir, env, f.name), sealed, 0o600); err != nil {
		return time.Time{}, evicted, fmt.Errorf("keep an original: %w", err)
	}
	// Kept in order of keeping; a clock set back puts one out of order, which only makes it go a little early.
	i, _ := slices.BinarySearchFunc(ef.files, f.kept, func(a file, k int64) int { return cmp.Compare(a.kept, k) })
	ef.files = slices.Insert(ef.files, i, f)
	ef.bytes += f.size
	return now.Add(b.MaxAge), evicted, nil
}

func check(env, app, exchange string) error {
	if err := api.ValidName(env); err != nil {
		return fmt.Errorf("original: environment: %w", err)
	}
	if err := api.ValidName(app); err != nil {
		return fmt.Errorf("original: app: %w", err)
	}
	if exchange == "" || len(exchange) > 256 {
		return fmt.Errorf("original: exchange id of %d bytes (1 to 256)", len(exchange))
	}
	return nil
}

func (ef *envFiles) find(id string) int {
	return slices.IndexFunc(ef.files, func(f file) bool { return f.id == id })
}

// remove deletes the i-th file of env's, answering which original it was.
func (s *Store) remove(env string, ef *envFiles, i int, reason string) (Evicted, error) {
	f := ef.files[i]
	if err := os.Remove(filepath.Join(s.dir, env, f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Evicted{}, fmt.Errorf("evict an original: %w", err)
	}
	ef.files = slices.Delete(ef.files, i, i+1)
	ef.bytes -= f.size
	return Evicted{Environment: env, App: f.app, Exchange: f.exchange, Reason: reason}, nil
}

// Get is the original of app's exchange in env, decrypted.
func (s *Store) Get(env, app, exchange string) (Stored, error) {
	if err := check(env, app, exchange); err != nil {
		return Stored{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ef := s.envs[env]
	i := -1
	if ef != nil {
		i = ef.find(fileID(app, exchange))
	}
	if i < 0 {
		return Stored{}, ErrNotFound
	}
	return s.read(env, filepath.Join(s.dir, env, ef.files[i].name), app, exchange)
}

// read opens the file at path, env's original of app's exchange.
func (s *Store) read(env, path, app, exchange string) (Stored, error) {
	h, hraw, rest, err := readHead(path, s.aead.NonceSize())
	if err != nil {
		return Stored{}, err
	}
	name := filepath.Base(path)
	if h.App != app || h.Exchange != exchange {
		return Stored{}, fmt.Errorf("original %s is damaged: it says it is another's", name)
	}
	ns := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, rest[:ns], rest[ns:], additional(env, hraw))
	if err != nil {
		return Stored{}, fmt.Errorf("original %s is damaged or not this runner's: it does not decrypt", name)
	}
	var st Stored
	if err := json.Unmarshal(plain, &st); err != nil {
		return Stored{}, fmt.Errorf("original %s: %w", name, err)
	}
	st.Environment = env
	return st, nil
}

// readHead reads the file at path and splits it: its head, the head's
// bytes, and what follows (the nonce, at least ns bytes, and the sealed
// original).
func readHead(path string, ns int) (head, []byte, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return head{}, nil, nil, fmt.Errorf("read an original: %w", err)
	}
	name := filepath.Base(path)
	bad := fmt.Errorf("original %s: %w", name, errDamaged)
	if len(raw) < len(magic)+2 || string(raw[:len(magic)]) != magic {
		return head{}, nil, nil, bad
	}
	n := int(binary.BigEndian.Uint16(raw[len(magic):]))
	raw = raw[len(magic)+2:]
	if len(raw) < n+ns {
		return head{}, nil, nil, bad
	}
	var h head
	if err := json.Unmarshal(raw[:n], &h); err != nil {
		return head{}, nil, nil, bad
	}
	return h, raw[:n], raw[n:], nil
}

// Sweep evicts the originals older than their environment's MaxAge at
// now, and answers them with those found damaged when the store opened.
func (s *Store) Sweep(now time.Time) ([]Evicted, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.damaged
	s.damaged = nil
	for env, ef := range s.envs {
		oldest := now.Add(-s.bounds(env).MaxAge).UnixMilli()
		for len(ef.files) > 0 && ef.files[0].kept < oldest {
			ev, err := s.remove(env, ef, 0, EvictedAge)
			if err != nil {
				return out, err
			}
			out = append(out, ev)
		}
	}
	return out, nil
}

// DeleteApp removes every original of app in env: the app was deleted.
func (s *Store) DeleteApp(env, app string) ([]Evicted, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ef := s.envs[env]
	if ef == nil {
		return nil, nil
	}
	var out []Evicted
	for i := 0; i < len(ef.files); {
		if ef.files[i].app != app {
			i++
			continue
		}
		ev, err := s.remove(env, ef, i, EvictedDeleted)
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// Usage is what env's originals take: how many and their bytes on disk.
func (s *Store) Usage(env string) (n int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ef := s.envs[env]; ef != nil {
		return len(ef.files), ef.bytes
	}
	return 0, 0
}
