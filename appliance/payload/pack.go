package payload

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Pack writes a payload of every file and symlink under root to w, which is
// normally positioned at the end of a copy of the cameleer executable. Every
// file a part names must exist under root; a binary part with no digest gets
// the SHA-256 of its first file. The output depends only on the content, so
// the same files always pack to the same bytes.
func Pack(w io.Writer, root string, parts []Part) (Manifest, error) {
	files, err := collect(root)
	if err != nil {
		return Manifest{}, err
	}
	byPath := map[string]*File{}
	for i := range files {
		byPath[files[i].Path] = &files[i]
	}

	counted := &countingWriter{w: w, h: sha256.New()}
	zw, err := zstd.NewWriter(counted, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return Manifest{}, err
	}
	tw := tar.NewWriter(zw)
	for i := range files {
		if err := writeFile(tw, root, &files[i]); err != nil {
			return Manifest{}, fmt.Errorf("pack %s: %w", files[i].Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return Manifest{}, err
	}
	if err := zw.Close(); err != nil {
		return Manifest{}, err
	}

	m := Manifest{SHA256: hex.EncodeToString(counted.h.Sum(nil)), Files: files}
	for _, p := range parts {
		for _, f := range p.Files {
			if byPath[f] == nil {
				return Manifest{}, fmt.Errorf("part %s: file %s is not under %s", p.Name, f, root)
			}
		}
		if p.Digest == "" && (p.Kind == KindBinary || p.Kind == KindFile) && len(p.Files) > 0 {
			p.Digest = "sha256:" + byPath[p.Files[0]].SHA256
		}
		m.Parts = append(m.Parts, p)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return Manifest{}, err
	}
	if _, err := w.Write(mb); err != nil {
		return Manifest{}, err
	}
	return m, writeTrailer(w, counted.n, int64(len(mb)))
}

// collect lists the files under root in a fixed order, with their hashes.
func collect(root string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		f := File{Path: filepath.ToSlash(rel), Mode: fi.Mode() & (fs.ModePerm | fs.ModeSymlink)}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if f.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			f.Size = fi.Size()
			if f.SHA256, err = hashFile(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not a regular file or symlink", rel)
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("collect payload files: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

func writeFile(tw *tar.Writer, root string, f *File) error {
	hdr := &tar.Header{Name: f.Path, Mode: int64(f.Mode.Perm()), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Size: f.Size}
	if f.Link != "" {
		hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, f.Link, 0
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if f.Link != "" {
		return nil
	}
	src, err := os.Open(filepath.Join(root, f.Path))
	if err != nil {
		return err
	}
	defer src.Close()
	n, err := io.Copy(tw, src)
	if err == nil && n != f.Size {
		err = fmt.Errorf("changed while packing")
	}
	return err
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// countingWriter passes writes through, counting and hashing them.
type countingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.h.Write(b[:n])
	return n, err
}
