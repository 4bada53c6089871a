package payload

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// Dir is where the payload with the given hash is extracted under a data dir.
func Dir(dataDir, sha string) string { return filepath.Join(dataDir, "bin", sha) }

// Extract unpacks the payload into <dataDir>/bin/<sha256>/ and points
// <dataDir>/bin/current at it (the previous target stays as bin/previous, so
// a failed upgrade can go back). It writes into a temporary directory,
// verifies every file's SHA-256 and the data's, and renames the directory
// into place, so the final directory is either complete or absent. A payload
// already extracted is not written again. Concurrent callers are serialised
// by a lock file.
func (p *Payload) Extract(ctx context.Context, dataDir string) (string, error) {
	if !filepath.IsAbs(dataDir) {
		return "", fmt.Errorf("extract payload: data dir %q is not an absolute path", dataDir)
	}
	binDir := filepath.Join(dataDir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("extract payload: %w", err)
	}
	unlock, err := lock(filepath.Join(binDir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	dir := Dir(dataDir, p.Manifest.SHA256)
	if err := p.check(dir); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			// Damaged since it was extracted: extract it again.
			if err := os.RemoveAll(dir); err != nil {
				return "", fmt.Errorf("extract payload: remove damaged %s: %w", dir, err)
			}
		}
		if err := p.extractFresh(ctx, binDir, dir); err != nil {
			return "", fmt.Errorf("extract payload: %w", err)
		}
	}
	if err := link(binDir, p.Manifest.SHA256); err != nil {
		return "", fmt.Errorf("extract payload: %w", err)
	}
	return dir, nil
}

// check tells whether dir holds every file of the manifest with its size. It
// is the cheap test that lets a restart skip extraction; the full hash check
// happens when the files are written.
func (p *Payload) check(dir string) error {
	for _, f := range p.Manifest.Files {
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return err
		}
		if f.Link == "" && fi.Size() != f.Size {
			return fmt.Errorf("%s: size %d, want %d", f.Path, fi.Size(), f.Size)
		}
	}
	return nil
}

func (p *Payload) extractFresh(ctx context.Context, binDir, dir string) error {
	// Leftovers of an extraction that was killed half-way.
	stale, _ := filepath.Glob(filepath.Join(binDir, ".extract-*"))
	for _, s := range stale {
		os.RemoveAll(s)
	}
	tmp, err := os.MkdirTemp(binDir, ".extract-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}

	want := map[string]File{}
	for _, f := range p.Manifest.Files {
		want[f.Path] = f
	}
	h := sha256.New()
	err = entries(ctx, io.TeeReader(p.data(), h), func(hdr *tar.Header, r io.Reader) error {
		f, ok := want[hdr.Name]
		if !ok {
			return fmt.Errorf("payload data holds %q, which its manifest does not list", hdr.Name)
		}
		delete(want, hdr.Name)
		if err := writeEntry(tmp, f, r); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.Manifest.SHA256 {
		return fmt.Errorf("payload data checksum mismatch: got %s, want %s (the binary is damaged)", got, p.Manifest.SHA256)
	}
	for name := range want {
		return fmt.Errorf("payload data lacks %s", name)
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

func writeEntry(root string, f File, r io.Reader) error {
	if !fs.ValidPath(f.Path) || strings.Contains(f.Path, "\\") {
		return fmt.Errorf("invalid path")
	}
	dst := filepath.Join(root, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if f.Link != "" {
		if path.IsAbs(f.Link) || strings.HasPrefix(path.Clean(path.Join(path.Dir(f.Path), f.Link)), "..") {
			return fmt.Errorf("symlink to %q leaves the payload", f.Link)
		}
		return os.Symlink(f.Link, dst)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, f.Mode.Perm())
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), r)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("checksum mismatch: got %s, want %s", got, f.SHA256)
	}
	return nil
}

// link points bin/current at sha, keeping the former target as bin/previous.
func link(binDir, sha string) error {
	cur := filepath.Join(binDir, "current")
	if old, err := os.Readlink(cur); err == nil {
		if old == sha {
			return nil
		}
		if err := replaceSymlink(old, filepath.Join(binDir, "previous")); err != nil {
			return err
		}
	}
	return replaceSymlink(sha, cur)
}

// replaceSymlink makes name a symlink to target atomically.
func replaceSymlink(target, name string) error {
	tmp := name + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ExtractFile writes one file of the payload, name as its manifest lists it
// (a symlink is followed to its target), to the new file dst, verifying its
// SHA-256: one tool of the engine, for a host with no extracted engine.
func (p *Payload) ExtractFile(ctx context.Context, name, dst string) error {
	f, err := p.regular(name)
	if err != nil {
		return err
	}
	found := errors.New("found")
	err = entries(ctx, p.data(), func(hdr *tar.Header, r io.Reader) error {
		if hdr.Name != f.Path {
			return nil
		}
		// writeEntry writes under a root: the file takes dst's name.
		f.Path = filepath.Base(dst)
		if err := writeEntry(filepath.Dir(dst), f, r); err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		return found
	})
	switch {
	case errors.Is(err, found):
		return nil
	case err == nil:
		return fmt.Errorf("payload data lacks %s", f.Path)
	}
	return err
}

// entries calls fn with each entry of the payload data r (a zstd-compressed
// tar) until fn fails or the data ends; it reads r to its end, so that a
// hash of r covers all of it.
func entries(ctx context.Context, r io.Reader, fn func(*tar.Header, io.Reader) error) error {
	zr, err := zstd.NewReader(r)
	if err != nil {
		return err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read payload data: %w", err)
		}
		if err := fn(hdr, tr); err != nil {
			return err
		}
	}
	// Drain what the tar reader left.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return fmt.Errorf("read payload data: %w", err)
	}
	return nil
}

// regular is the manifest's file name, or the file its symlinks lead to.
func (p *Payload) regular(name string) (File, error) {
	byPath := map[string]File{}
	for _, f := range p.Manifest.Files {
		byPath[f.Path] = f
	}
	for range len(p.Manifest.Files) + 1 {
		f, ok := byPath[name]
		if !ok {
			return File{}, fmt.Errorf("the payload has no %s", name)
		}
		if f.Link == "" {
			return f, nil
		}
		name = path.Join(path.Dir(name), f.Link)
	}
	return File{}, fmt.Errorf("the payload's %s is a symlink loop", name)
}

// Prune removes the payloads under <dataDir>/bin that neither bin/current
// nor bin/previous names and that inUse says nothing runs from (the shims
// of containers started under an older version do, until those containers
// are replaced). It returns what it removed.
func Prune(dataDir string, inUse func(dir string) bool) ([]string, error) {
	binDir := filepath.Join(dataDir, "bin")
	unlock, err := lock(filepath.Join(binDir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	keep := map[string]bool{}
	for _, l := range []string{"current", "previous"} {
		if t, err := os.Readlink(filepath.Join(binDir, l)); err == nil {
			keep[t] = true
		}
	}
	ents, err := os.ReadDir(binDir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		dir := filepath.Join(binDir, e.Name())
		if !e.IsDir() || !shaName.MatchString(e.Name()) || keep[e.Name()] || inUse(dir) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return removed, fmt.Errorf("prune %s: %w", dir, err)
		}
		removed = append(removed, dir)
	}
	return removed, nil
}

var shaName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// RunningFrom tells whether a process of this host runs an executable
// under dir.
func RunningFrom(dir string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && strings.HasPrefix(exe, dir+"/") {
			return true
		}
	}
	return false
}
