package imagebuild

import (
	"archive/zip"
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
)

// fatJar is a Spring Boot fat JAR of about depMB MiB of dependencies: each
// dependency JAR is incompressible data, as real (already deflated) JARs
// nearly are, stored the way Spring Boot stores them.
func fatJar(b *testing.B, depMB int, classes string) []byte {
	b.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte, method uint16) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			b.Fatal(err)
		}
		w.Write(data)
	}
	add("META-INF/MANIFEST.MF", []byte("Main-Class: org.springframework.boot.loader.launch.JarLauncher\r\nStart-Class: a.App\r\n"), zip.Deflate)
	add("org/springframework/boot/loader/launch/JarLauncher.class", bytes.Repeat([]byte("loader"), 1000), zip.Deflate)
	rng := rand.NewChaCha8([32]byte{1})
	for i := range depMB {
		dep := make([]byte, 1<<20)
		rng.Read(dep)
		add(fmt.Sprintf("BOOT-INF/lib/dep-%02d-1.0.jar", i), dep, zip.Store)
	}
	for i := range 200 {
		add(fmt.Sprintf("BOOT-INF/classes/a/C%d.class", i), []byte(classes+fmt.Sprint(i)), zip.Deflate)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkImage60MB builds the image of a 60 MiB fat JAR, every layer's
// digest computed (what a push needs).
func BenchmarkImage60MB(b *testing.B) {
	jar := fatJar(b, 60, "v1")
	b.SetBytes(int64(len(jar)))
	for b.Loop() {
		res, err := Image(Input{Base: empty.Image, Agent: []byte("agent"), App: jar})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := res.Image.Digest(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRebuildClassesChanged builds a new version of a 60 MiB fat JAR
// whose dependencies did not change, with the cache of the build before.
func BenchmarkRebuildClassesChanged(b *testing.B) {
	cache := &Cache{}
	if _, err := Image(Input{Base: empty.Image, Agent: []byte("agent"), App: fatJar(b, 60, "v1"), Cache: cache}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// New classes every time: only the dependency layer can be reused.
		jar := fatJar(b, 60, fmt.Sprintf("v%d", i+2))
		b.SetBytes(int64(len(jar)))
		b.StartTimer()
		res, err := Image(Input{Base: empty.Image, Agent: []byte("agent"), App: jar, Cache: cache})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := res.Image.Digest(); err != nil {
			b.Fatal(err)
		}
	}
}
