// Package images builds OCI images reproducibly: the same files and config
// always give the same digests. Layers are tars with sorted entries, fixed
// timestamps and root ownership; configs carry a fixed creation time. The
// engine's system images are built with it at `make` time and the build
// controller uses it for app images.
package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the timestamp given to every file and config, so digests depend on
// content only.
var Epoch = time.Unix(0, 0).UTC()

// LayerFromDir makes a layer of every file, directory and symlink under dir,
// placed at the root of the image. Modes are kept; owners become root and
// times become Epoch.
func LayerFromDir(dir string) (v1.Layer, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", dir, err)
	}
	sort.Strings(paths)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return nil, err
		}
		if err := addFile(tw, p, filepath.ToSlash(rel)); err != nil {
			return nil, fmt.Errorf("add %s to layer: %w", rel, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return LayerFromTar(buf.Bytes())
}

// LayerFromTar wraps an uncompressed tar as a gzip-compressed OCI layer.
func LayerFromTar(b []byte) (v1.Layer, error) {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	return l, nil
}

func addFile(tw *tar.Writer, src, name string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(src); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	normalize(hdr)
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

// normalize strips everything from a header that is not content: owners,
// times and the host's user names.
func normalize(hdr *tar.Header) {
	hdr.Uid, hdr.Gid = 0, 0
	hdr.Uname, hdr.Gname = "", ""
	hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = Epoch, time.Time{}, time.Time{}
	hdr.Name = path.Clean(hdr.Name)
	if hdr.Typeflag == tar.TypeDir {
		hdr.Name += "/"
	}
	hdr.PAXRecords = nil
	hdr.Devmajor, hdr.Devminor = 0, 0
}

// File is a regular file for LayerFromFiles.
type File struct {
	// Name is the path in the image, without a leading slash.
	Name string
	Mode int64
	Data []byte
}

// LayerFromFiles makes a layer of files, with their parent directories
// (mode 0755), in sorted order, owned by root, every time at Epoch: the same
// files give the same digest.
func LayerFromFiles(files []File) (v1.Layer, error) {
	b, err := TarFiles(files)
	if err != nil {
		return nil, err
	}
	return LayerFromTar(b)
}

// TarFiles is the uncompressed tar LayerFromFiles makes a layer of.
func TarFiles(files []File) ([]byte, error) {
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(path.Clean(f.Name)); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	type entry struct {
		name string
		file *File
	}
	var entries []entry
	for d := range dirs {
		entries = append(entries, entry{name: d + "/"})
	}
	for i := range files {
		entries = append(entries, entry{name: path.Clean(files[i].Name), file: &files[i]})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: tar.TypeDir, Mode: 0o755}
		if e.file != nil {
			hdr = &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: e.file.Mode, Size: int64(len(e.file.Data))}
		}
		normalize(hdr)
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if e.file != nil {
			if _, err := tw.Write(e.file.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
