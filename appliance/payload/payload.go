// Package payload carries the engine inside the cameleer executable.
//
// `make` appends the payload to bin/cameleer, the way k0s does, so the
// executable stays one file and the Go build of cameleer never depends on the
// engine. The layout at the end of the executable is:
//
//	[data: zstd-compressed tar] [manifest: JSON] [trailer: 32 bytes]
//
// The trailer is a 16-byte magic string followed by the data and manifest
// lengths (little-endian uint64). The manifest lists every part of the engine
// with its version and digest, and every file with its SHA-256, so `cameleer
// version` reads it without touching the data, and extraction verifies each
// file it writes.
package payload

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

const (
	magic      = "cameleer-payload"
	trailerLen = len(magic) + 16
)

// ErrNoPayload is returned for an executable that carries no payload, such as
// one built with plain `go build`.
var ErrNoPayload = errors.New("this cameleer binary carries no engine payload (build it with make)")

// Part kinds.
const (
	KindBinary  = "binary"  // an executable run by the supervisor
	KindImage   = "image"   // an OCI image archive imported into containerd
	KindLibrary = "library" // a Go module compiled into cameleer itself
	KindFile    = "file"    // another file of a part: Kubernetes objects, the Java agent
)

// Part is one component of the engine.
type Part struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	// Digest identifies the part's content: the SHA-256 of a binary, the
	// manifest digest of an image, the go.sum hash of a library.
	Digest string `json:"digest"`
	// Image is the reference an image part is imported as.
	Image string `json:"image,omitempty"`
	// Files are the payload paths that make up the part.
	Files []string `json:"files,omitempty"`
}

// File is one file in the payload data.
type File struct {
	Path   string      `json:"path"`
	Mode   fs.FileMode `json:"mode"`
	Size   int64       `json:"size,omitempty"`
	SHA256 string      `json:"sha256,omitempty"`
	// Link is the target of a symlink.
	Link string `json:"link,omitempty"`
}

// Manifest describes a payload.
type Manifest struct {
	// SHA256 is the hash of the compressed data; it names the directory the
	// payload is extracted to.
	SHA256 string `json:"sha256"`
	Parts  []Part `json:"parts"`
	Files  []File `json:"files"`
}

// Payload is the payload of an executable, opened for reading.
type Payload struct {
	Manifest Manifest
	f        *os.File
	offset   int64 // where the data begins
	size     int64 // data length
}

// Open reads the trailer and manifest of the payload appended to the
// executable at path.
func Open(path string) (*Payload, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open payload: %w", err)
	}
	p, err := read(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

func read(f *os.File) (*Payload, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open payload: %w", err)
	}
	end := fi.Size()
	if end < int64(trailerLen) {
		return nil, ErrNoPayload
	}
	t := make([]byte, trailerLen)
	if _, err := f.ReadAt(t, end-int64(trailerLen)); err != nil {
		return nil, fmt.Errorf("read payload trailer: %w", err)
	}
	if !bytes.Equal(t[:len(magic)], []byte(magic)) {
		return nil, ErrNoPayload
	}
	dataLen := int64(binary.LittleEndian.Uint64(t[len(magic):]))
	manLen := int64(binary.LittleEndian.Uint64(t[len(magic)+8:]))
	manOff := end - int64(trailerLen) - manLen
	dataOff := manOff - dataLen
	if manLen <= 0 || dataLen < 0 || dataOff < 0 {
		return nil, errors.New("payload trailer is corrupt: lengths exceed the file (truncated download?)")
	}
	mb := make([]byte, manLen)
	if _, err := f.ReadAt(mb, manOff); err != nil {
		return nil, fmt.Errorf("read payload manifest: %w", err)
	}
	p := &Payload{f: f, offset: dataOff, size: dataLen}
	if err := json.Unmarshal(mb, &p.Manifest); err != nil {
		return nil, fmt.Errorf("payload manifest is corrupt: %w", err)
	}
	return p, nil
}

// Close releases the executable.
func (p *Payload) Close() error { return p.f.Close() }

// data returns a reader over the compressed data.
func (p *Payload) data() io.Reader { return io.NewSectionReader(p.f, p.offset, p.size) }

// Size is the length of the compressed data in bytes.
func (p *Payload) Size() int64 { return p.size }

func writeTrailer(w io.Writer, dataLen, manLen int64) error {
	t := make([]byte, trailerLen)
	copy(t, magic)
	binary.LittleEndian.PutUint64(t[len(magic):], uint64(dataLen))
	binary.LittleEndian.PutUint64(t[len(magic)+8:], uint64(manLen))
	_, err := w.Write(t)
	return err
}
