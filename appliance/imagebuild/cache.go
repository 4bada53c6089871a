package imagebuild

import (
	"crypto/sha256"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cameleer/cameleer/appliance/images"
)

// Cache keeps the layers of recent builds by their content, so a new
// version of an app whose dependencies did not change reuses the
// dependency layer as it is, compressed and digested, instead of
// compressing it again. It holds at most Max layers (default 16) of at
// most MaxBytes together (default 512 MiB, counted uncompressed), dropping
// the least recently used.
type Cache struct {
	Max      int
	MaxBytes int64

	mu     sync.Mutex
	layers map[[sha256.Size]byte]*cached
	bytes  int64
	tick   uint64
}

type cached struct {
	layer v1.Layer
	size  int64
	used  uint64
}

// layer makes (or finds) the layer of files.
func (c *Cache) layer(files []images.File) (v1.Layer, error) {
	tar, err := images.TarFiles(files)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return images.LayerFromTar(tar)
	}
	key := sha256.Sum256(tar)
	c.mu.Lock()
	c.tick++
	if e, ok := c.layers[key]; ok {
		e.used = c.tick
		c.mu.Unlock()
		return e.layer, nil
	}
	c.mu.Unlock()
	l, err := images.LayerFromTar(tar)
	if err != nil {
		return nil, err
	}
	// Digest compresses the layer once; the cached layer keeps the result.
	if _, err := l.Digest(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.layers == nil {
		c.layers = map[[sha256.Size]byte]*cached{}
	}
	if _, ok := c.layers[key]; !ok {
		c.layers[key] = &cached{layer: l, size: int64(len(tar)), used: c.tick}
		c.bytes += int64(len(tar))
	}
	max, maxBytes := c.Max, c.MaxBytes
	if max <= 0 {
		max = 16
	}
	if maxBytes <= 0 {
		maxBytes = 512 << 20
	}
	for len(c.layers) > max || c.bytes > maxBytes {
		var oldest [sha256.Size]byte
		first := true
		for k, e := range c.layers {
			if first || e.used < c.layers[oldest].used {
				oldest, first = k, false
			}
		}
		c.bytes -= c.layers[oldest].size
		delete(c.layers, oldest)
	}
	return l, nil
}
