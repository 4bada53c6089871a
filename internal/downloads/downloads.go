// Package downloads is what the control plane hands a host that is to
// become a runner, and a controller a host that is to join its cluster:
// the cameleer binary it ships with (runs, for a controller), and that
// binary's version, architecture and SHA-256, published beside it so that
// install.sh can check what it fetched.
package downloads

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Binary describes the cameleer binary served.
type Binary struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	// Arch is the binary's GOARCH (amd64, arm64).
	Arch   string `json:"arch"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// SigningKey is the key the binary checks air-gapped bundles with.
	SigningKey string `json:"signingKey,omitempty"`
}

// ErrNone means the control plane was started without a binary to serve.
var ErrNone = errors.New("this control plane serves no cameleer binary: start it with --runner-binary PATH")

// Service serves the binary at a path. The file may be replaced while the
// control plane runs (a new version put in place): what is served and
// described is what the path holds when it is asked for, each answer
// consistent with itself.
type Service struct {
	path string

	mu    sync.Mutex
	bin   Binary
	stamp stamp
}

// stamp tells a file's versions apart without reading it.
type stamp struct {
	size    int64
	modTime time.Time
	ino     uint64
}

// New describes the binary at path ("": none). It fails when the file is
// not a cameleer binary that runs here, so that a control plane does not
// start up serving something no host can install.
func New(ctx context.Context, path string) (*Service, error) {
	s := &Service{path: path}
	if path == "" {
		return s, nil
	}
	f, bin, err := s.Open(ctx)
	if err != nil {
		return nil, err
	}
	f.Close()
	if bin.Version == "" {
		return nil, fmt.Errorf("%s: `version` names no version: not a cameleer binary", path)
	}
	return s, nil
}

// Open opens the binary for reading and describes it; ErrNone without one.
func (s *Service) Open(ctx context.Context) (*os.File, Binary, error) {
	if s.path == "" {
		return nil, Binary{}, ErrNone
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, Binary{}, fmt.Errorf("open the runner binary: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Binary{}, err
	}
	now := stampOf(st)
	s.mu.Lock()
	defer s.mu.Unlock()
	if now != s.stamp {
		bin, err := describe(ctx, f)
		if err != nil {
			f.Close()
			return nil, Binary{}, fmt.Errorf("%s: %w", s.path, err)
		}
		s.bin, s.stamp = bin, now
	}
	return f, s.bin, nil
}

// describe reads the open binary f whole for its hash, its ELF header for
// its architecture, and runs it for its version: f's own inode, through
// /proc, so that a file swapped meanwhile cannot answer for it.
func describe(ctx context.Context, f *os.File) (Binary, error) {
	var b Binary
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return b, fmt.Errorf("hash: %w", err)
	}
	b.SHA256, b.Size = hex.EncodeToString(h.Sum(nil)), n
	e, err := elf.NewFile(f)
	if err != nil {
		return b, fmt.Errorf("not an executable: %w", err)
	}
	switch e.Machine {
	case elf.EM_X86_64:
		b.Arch = "amd64"
	case elf.EM_AARCH64:
		b.Arch = "arm64"
	default:
		return b, fmt.Errorf("an executable for %s, which no runner runs on", e.Machine)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), "version", "-o", "json").Output()
	if err != nil {
		return b, fmt.Errorf("run `version`: %w", err)
	}
	var v struct{ Version, Commit, SigningKey string }
	if err := json.Unmarshal(out, &v); err != nil {
		return b, fmt.Errorf("read `version -o json`: %w", err)
	}
	b.Version, b.Commit, b.SigningKey = v.Version, v.Commit, v.SigningKey
	return b, nil
}

func stampOf(st os.FileInfo) stamp {
	s := stamp{size: st.Size(), modTime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.ino = sys.Ino
	}
	return s
}
