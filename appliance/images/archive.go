package images

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Annotations containerd and other OCI tools read to name an image in an
// archive's index.
const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// WriteArchive writes img as an OCI image layout in a tar stream (the format
// `ctr images import` and `skopeo copy oci-archive:` read), named ref. The
// stream is reproducible: blobs in a fixed order, fixed times and owners.
func WriteArchive(w io.Writer, img v1.Image, ref string) error {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	configName, err := img.ConfigName()
	if err != nil {
		return err
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     "application/vnd.oci.image.index.v1+json",
		Manifests: []v1.Descriptor{{
			MediaType: mt,
			Size:      int64(len(manifest)),
			Digest:    digest,
			Annotations: map[string]string{
				annotationContainerdName: tag.Name(),
				annotationRefName:        tag.TagStr(),
			},
		}},
	})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	dirs := []string{"blobs/", "blobs/sha256/"}
	for _, d := range dirs {
		if err := writeEntry(tw, d, nil); err != nil {
			return err
		}
	}
	if err := writeEntry(tw, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := writeEntry(tw, "index.json", index); err != nil {
		return err
	}
	if err := writeEntry(tw, blobPath(digest), manifest); err != nil {
		return err
	}
	if err := writeEntry(tw, blobPath(configName), config); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("read layers: %w", err)
	}
	seen := map[v1.Hash]bool{}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		if err := writeLayer(tw, l, d); err != nil {
			return fmt.Errorf("write layer %s: %w", d, err)
		}
	}
	return tw.Close()
}

func writeLayer(tw *tar.Writer, l v1.Layer, d v1.Hash) error {
	size, err := l.Size()
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	hdr := &tar.Header{Name: blobPath(d), Mode: 0o644, Size: size, Typeflag: tar.TypeReg}
	normalize(hdr)
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, rc)
	return err
}

func writeEntry(tw *tar.Writer, name string, b []byte) error {
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}
	if b == nil {
		hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
	}
	normalize(hdr)
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// ArchiveInfo describes the image in an archive written by WriteArchive.
type ArchiveInfo struct {
	Ref    string
	Digest v1.Hash
	Config *v1.ConfigFile
}

// ReadArchive reads the name, digest and config of the image in the OCI
// archive at path without unpacking it.
func ReadArchive(path string) (ArchiveInfo, error) {
	a, err := readArchive(path)
	return a.info, err
}

// archiveHead is what one pass over an archive learns: the image's info and
// its raw manifest and config.
type archiveHead struct {
	info     ArchiveInfo
	manifest []byte
	parsed   *v1.Manifest
	config   []byte
}

func readArchive(path string) (archiveHead, error) {
	var a archiveHead
	f, err := os.Open(path)
	if err != nil {
		return a, fmt.Errorf("read image archive: %w", err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a, fmt.Errorf("read image archive %s: %w", path, err)
		}
		// Manifests and configs are small; layers are skipped unread.
		if hdr.Typeflag == tar.TypeReg && hdr.Size < 1<<20 {
			if files[hdr.Name], err = io.ReadAll(tr); err != nil {
				return a, fmt.Errorf("read image archive %s: %w", path, err)
			}
		}
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		return a, fmt.Errorf("%s: not a single-image OCI archive", path)
	}
	desc := idx.Manifests[0]
	a.manifest = files[blobPath(desc.Digest)]
	if a.parsed, err = v1.ParseManifest(bytes.NewReader(a.manifest)); err != nil {
		return a, fmt.Errorf("%s: read manifest: %w", path, err)
	}
	a.config = files[blobPath(a.parsed.Config.Digest)]
	cfg, err := v1.ParseConfigFile(bytes.NewReader(a.config))
	if err != nil {
		return a, fmt.Errorf("%s: read config: %w", path, err)
	}
	a.info = ArchiveInfo{Ref: desc.Annotations[annotationContainerdName], Digest: desc.Digest, Config: cfg}
	return a, nil
}
