package images

import (
	"archive/tar"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OpenArchive is the image in an OCI archive written by WriteArchive, for
// pushing to a registry. Layers are read from the file when asked for, so
// an image costs no memory beyond its manifest and config.
func OpenArchive(path string) (v1.Image, ArchiveInfo, error) {
	a, err := readArchive(path)
	if err != nil {
		return nil, a.info, err
	}
	img, err := partial.CompressedToImage(&archiveImage{path: path, manifest: a.manifest, parsed: a.parsed, config: a.config})
	return img, a.info, err
}

type archiveImage struct {
	path     string
	manifest []byte
	parsed   *v1.Manifest
	config   []byte
}

func (a *archiveImage) RawManifest() ([]byte, error)   { return a.manifest, nil }
func (a *archiveImage) RawConfigFile() ([]byte, error) { return a.config, nil }
func (a *archiveImage) MediaType() (types.MediaType, error) {
	return a.parsed.MediaType, nil
}

func (a *archiveImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range a.parsed.Layers {
		if l.Digest == h {
			return &archiveLayer{path: a.path, desc: l}, nil
		}
	}
	if a.parsed.Config.Digest == h {
		return &archiveLayer{path: a.path, desc: a.parsed.Config}, nil
	}
	return nil, fmt.Errorf("%s: no blob %s", a.path, h)
}

type archiveLayer struct {
	path string
	desc v1.Descriptor
}

func (l *archiveLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *archiveLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *archiveLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *archiveLayer) Compressed() (io.ReadCloser, error)  { return openBlob(l.path, l.desc.Digest) }

// openBlob finds the blob h in the archive at path and returns a reader of
// it that closes the file.
func openBlob(path string, h v1.Hash) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read image archive: %w", err)
	}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			f.Close()
			return nil, fmt.Errorf("%s: no blob %s", path, h)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read image archive %s: %w", path, err)
		}
		if hdr.Name == blobPath(h) {
			return struct {
				io.Reader
				io.Closer
			}{tr, f}, nil
		}
	}
}
