package artifact

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

type entry struct {
	name   string
	body   []byte
	write  func(io.Writer) error // instead of body, for a large one
	stored bool                  // no compression
}

func jar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := writeJar(&buf, entries...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeJar writes the entries as a JAR to w as they come, so that a large
// one is never whole in memory.
func writeJar(w io.Writer, entries ...entry) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		method := zip.Deflate
		if e.stored {
			method = zip.Store
		}
		ew, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: method})
		if err != nil {
			return err
		}
		if e.write != nil {
			err = e.write(ew)
		} else {
			_, err = ew.Write(e.body)
		}
		if err != nil {
			return err
		}
	}
	return zw.Close()
}

// nest is a JAR of the entries as the body of an entry of another.
func nest(name string, stored bool, entries ...entry) entry {
	return entry{name: name, stored: stored, write: func(w io.Writer) error { return writeJar(w, entries...) }}
}

func mf(attrs string) entry {
	return entry{name: "META-INF/MANIFEST.MF", body: []byte("Manifest-Version: 1.0\r\n" + attrs + "\r\n")}
}

// tiny is n empty entries.
func tiny(n int) []entry {
	es := make([]entry, n)
	for i := range es {
		es[i] = entry{name: strconv.Itoa(i), stored: true}
	}
	return es
}

// directoryOnly is an archive that is all central directory, n empty
// entries, its end record listing listed of them.
func directoryOnly(n int, listed uint16) []byte {
	le := binary.LittleEndian
	var b []byte
	for i := range n {
		name := strconv.Itoa(i)
		b = le.AppendUint32(b, 0x02014b50)
		b = append(b, make([]byte, 24)...)
		b = le.AppendUint16(b, uint16(len(name)))
		b = append(append(b, make([]byte, 16)...), name...)
	}
	end := le.AppendUint32(nil, 0x06054b50)
	end = le.AppendUint16(le.AppendUint16(le.AppendUint32(end, 0), listed), listed)
	end = le.AppendUint32(le.AppendUint32(end, uint32(len(b))), 0)
	return append(b, le.AppendUint16(end, 0)...)
}

// allocated is how many bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func pom(group, artifact, version string) entry {
	return entry{name: "META-INF/maven/" + group + "/" + artifact + "/pom.properties",
		body: []byte("#Generated\ngroupId=" + group + "\nartifactId=" + artifact + "\nversion=" + version + "\n")}
}

// check checks b with the default limits and the built-in vulnerability
// list, and that no temp file is left behind.
func check(t *testing.T, b []byte, sha string) (Info, error) {
	t.Helper()
	db, err := LoadVulnDB("")
	if err != nil {
		t.Fatal(err)
	}
	lim := DefaultLimits
	lim.TempDir = t.TempDir()
	info, err := Check(bytes.NewReader(b), int64(len(b)), sha, lim, db)
	noneLeft(t, lim.TempDir)
	return info, err
}

func noneLeft(t testing.TB, dir string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil || len(left) > 0 {
		t.Errorf("temp dir after the check: %v %v", left, err)
	}
}

func TestAccepts(t *testing.T) {
	plain := jar(t, mf("Main-Class: com.example.App"), entry{name: "com/example/App.class", body: []byte("cafebabe")})
	info, err := check(t, plain, "")
	if err != nil || info.MainClass != "com.example.App" || info.SpringBoot {
		t.Fatalf("plain jar: %+v %v", info, err)
	}
	sum := sha256.Sum256(plain)
	if info.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("sha %s", info.SHA256)
	}
	if _, err := check(t, plain, strings.ToUpper(info.SHA256)); err != nil {
		t.Errorf("matching sha refused: %v", err)
	}

	safeLib := jar(t, pom("org.apache.logging.log4j", "log4j-core", "2.17.1"))
	boot := jar(t,
		mf("Main-Class: org.springframework.boot.loader.launch.JarLauncher\r\nStart-Class: com.example.Boot"),
		entry{name: "BOOT-INF/classes/com/example/Boot.class", body: []byte("x")},
		entry{name: "BOOT-INF/lib/log4j-core-2.17.1.jar", body: safeLib, stored: true})
	info, err = check(t, boot, "")
	if err != nil || !info.SpringBoot || info.StartClass != "com.example.Boot" {
		t.Fatalf("spring boot jar: %+v %v", info, err)
	}
	// Libraries of libraries, as deep as allowed.
	deep := jar(t, mf("Main-Class: a.B"), entry{name: "a.jar", body: deepJar(t, DefaultLimits.MaxDepth, safeLib), stored: true})
	if _, err := check(t, deep, ""); err != nil {
		t.Errorf("jar nested %d deep: %v", DefaultLimits.MaxDepth, err)
	}
	// A Spring Boot layout without a Main-Class is still startable.
	if _, err := check(t, jar(t, entry{name: "BOOT-INF/classes/a/B.class", body: []byte("x")}), ""); err != nil {
		t.Errorf("boot layout without manifest: %v", err)
	}
}

// deepJar is a JAR that, as an entry of the upload, has lib depth deep:
// each JAR stored in the next.
func deepJar(t *testing.T, depth int, lib []byte) []byte {
	for range depth - 1 {
		lib = jar(t, entry{name: "a.jar", body: lib, stored: true})
	}
	return lib
}

func TestRefuses(t *testing.T) {
	main := mf("Main-Class: a.B")
	vulnerable := jar(t, pom("org.apache.logging.log4j", "log4j-core", "2.14.1"))
	deep := jar(t, entry{name: "inner.jar", body: jar(t, pom("org.apache.commons", "commons-text", "1.9")), stored: true})
	deflatedTwice := jar(t, entry{name: "inner.jar", body: jar(t, pom("org.apache.commons", "commons-text", "1.9"))})
	bomb := bytes.Repeat([]byte{0}, 8<<20)
	badCRC := jar(t, main, entry{name: "lib/x.jar", body: vulnerable})
	badCRC[bytes.LastIndex(badCRC, []byte("lib/x.jar"))-30] ^= 0xff // in the central directory
	for name, tc := range map[string]struct {
		b      []byte
		sha    string
		status int
		msg    string
	}{
		"not a zip":      {b: []byte("hello, I am not a jar"), status: http.StatusUnsupportedMediaType, msg: "not a ZIP"},
		"truncated":      {b: jar(t, main)[:40], status: http.StatusUnsupportedMediaType, msg: "not a ZIP"},
		"sha mismatch":   {b: jar(t, main), sha: strings.Repeat("0", 64), status: http.StatusUnprocessableEntity, msg: "SHA-256 mismatch"},
		"no main class":  {b: jar(t, mf("Created-By: test"), entry{name: "a/B.class"}), status: http.StatusUnprocessableEntity, msg: "no Main-Class"},
		"absolute path":  {b: jar(t, main, entry{name: "/etc/passwd"}), status: http.StatusUnprocessableEntity, msg: "absolute path"},
		"dot dot":        {b: jar(t, main, entry{name: "a/../../evil"}), status: http.StatusUnprocessableEntity, msg: "'..'"},
		"backslash":      {b: jar(t, main, entry{name: `a\..\evil`}), status: http.StatusUnprocessableEntity, msg: "backslash"},
		"ratio bomb":     {b: jar(t, main, entry{name: "zeros", body: bomb}), status: http.StatusUnprocessableEntity, msg: "zip bomb"},
		"log4shell":      {b: jar(t, main, entry{name: "lib/log4j-core-2.14.1.jar", body: vulnerable, stored: true}), status: http.StatusUnprocessableEntity, msg: "log4j-core 2.14.1 in lib/log4j-core-2.14.1.jar: CVE-2021-44228"},
		"nested twice":   {b: jar(t, main, entry{name: "BOOT-INF/lib/outer.jar", body: deep, stored: true}), status: http.StatusUnprocessableEntity, msg: "commons-text 1.9"},
		"deflated":       {b: jar(t, main, entry{name: "lib/log4j-core-2.14.1.jar", body: vulnerable}), status: http.StatusUnprocessableEntity, msg: "log4j-core 2.14.1 in lib/log4j-core-2.14.1.jar: CVE-2021-44228"},
		"deflated twice": {b: jar(t, main, entry{name: "lib/outer.jar", body: deflatedTwice}), status: http.StatusUnprocessableEntity, msg: "commons-text 1.9 in lib/outer.jar!/inner.jar"},
		"bad checksum":   {b: badCRC, status: http.StatusUnprocessableEntity, msg: `entry "lib/x.jar": zip: checksum error`},
		"nested 8 deep":  {b: jar(t, main, entry{name: "a.jar", body: deepJar(t, 8, jar(t, main)), stored: true}), status: http.StatusUnprocessableEntity, msg: `entry "a.jar!/a.jar!/a.jar!/a.jar" is a JAR nested 4 deep, over the limit of 3`},
		"shaded library": {b: jar(t, main, pom("org.springframework", "spring-beans", "5.3.17")), status: http.StatusUnprocessableEntity, msg: "CVE-2022-22965"},
	} {
		_, err := check(t, tc.b, tc.sha)
		var e *Error
		if !errors.As(err, &e) || e.Status != tc.status || !strings.Contains(e.Msg, tc.msg) || strings.Contains(e.Msg, "\n") {
			t.Errorf("%s: %v, want %d with %q", name, err, tc.status, tc.msg)
		}
	}
	big := DefaultLimits
	big.MaxSize = 10
	b := jar(t, main)
	_, err := Check(bytes.NewReader(b), int64(len(b)), "", big, nil)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("too large: %v", err)
	}
	few := DefaultLimits
	few.MaxEntries = 3
	b = jar(t, main, entry{name: "1"}, entry{name: "2"}, entry{name: "3"})
	if _, err := Check(bytes.NewReader(b), int64(len(b)), "", few, nil); !errors.As(err, &e) || !strings.Contains(e.Msg, "entries") {
		t.Errorf("too many entries: %v", err)
	}
	// A temp file that cannot be made is the server's trouble, not the
	// upload's fault.
	db, err := LoadVulnDB("")
	if err != nil {
		t.Fatal(err)
	}
	noDir := DefaultLimits
	noDir.TempDir = filepath.Join(t.TempDir(), "gone")
	b = jar(t, main, entry{name: "lib/x.jar", body: vulnerable})
	if _, err := Check(bytes.NewReader(b), int64(len(b)), "", noDir, db); err == nil || errors.As(err, &e) {
		t.Errorf("no temp dir: %v", err)
	}
}

// TestNestedMemory checks large nested JARs, stored and compressed, in
// little memory: they are read in place or from disk, never whole.
func TestNestedMemory(t *testing.T) {
	const size, bound = 40 << 20, 16 << 20
	blob := entry{name: "data.bin", stored: true, write: func(w io.Writer) error {
		// Random, so that compressing it does not look like a zip bomb.
		_, err := io.CopyN(w, rand.NewChaCha8([32]byte{}), size)
		return err
	}}
	f, err := os.Create(filepath.Join(t.TempDir(), "app.jar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = writeJar(f, mf("Main-Class: a.B"),
		nest("lib/stored.jar", true, blob),
		nest("lib/compressed.jar", false, blob),
		nest("lib/1.jar", true, nest("2.jar", false, nest("3.jar", true, blob))))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	db, err := LoadVulnDB("")
	if err != nil {
		t.Fatal(err)
	}
	lim := DefaultLimits
	lim.TempDir = t.TempDir()
	alloc := allocated(func() { _, err = Check(f, fi.Size(), "", lim, db) })
	if err != nil {
		t.Fatal(err)
	}
	noneLeft(t, lim.TempDir)
	t.Logf("checking %d MiB of nested JARs allocated %d KiB", 3*size>>20, alloc>>10)
	if alloc > bound {
		t.Errorf("checking %d MiB of nested JARs allocated %d MiB, over %d MiB", 3*size>>20, alloc>>20, bound>>20)
	}
}

// TestDirectoryMemory checks that an archive of too many entries is
// refused before zip.NewReader makes a record of each.
func TestDirectoryMemory(t *testing.T) {
	const n, bound = 150_000, 8 << 20
	// A directory of size 0 puts it at the end record, where zip.NewReader
	// finds no entry; it then reads the one at the record's offset.
	moved := directoryOnly(n, n%65536)
	binary.LittleEndian.PutUint32(moved[len(moved)-10:], 0)
	for name, tc := range map[string]struct {
		b   []byte
		msg string
	}{
		"listed": {jar(t, tiny(n)...), "zip bomb: the archive lists 150000 entries, over 100000"},
		// zip.NewReader matches the entries against the end record's
		// number only modulo 65536.
		"understated": {directoryOnly(n, n%65536), "zip bomb: the archive holds over 100000 entries"},
		"moved":       {moved, "zip bomb: the archive holds over 100000 entries"},
	} {
		var err error
		alloc := allocated(func() { _, err = Check(bytes.NewReader(tc.b), int64(len(tc.b)), "", DefaultLimits, nil) })
		t.Logf("%s: checking %d entries allocated %d KiB", name, n, alloc>>10)
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Msg != tc.msg {
			t.Errorf("%s: %v, want %q", name, err, tc.msg)
		}
		if alloc > bound {
			t.Errorf("%s: checking %d entries allocated %d MiB, over %d MiB", name, n, alloc>>20, bound>>20)
		}
	}
}

// TestNestedEntries checks that a nested JAR may list only the entries left
// of the limit once its parents' are counted.
func TestNestedEntries(t *testing.T) {
	db, err := LoadVulnDB("")
	if err != nil {
		t.Fatal(err)
	}
	lim := DefaultLimits
	lim.MaxEntries = 1000
	lim.TempDir = t.TempDir()
	upload := func(nested int) []byte {
		es := []entry{{name: "lib/x.jar", body: jar(t, tiny(nested)...), stored: true}, mf("Main-Class: a.B")}
		return jar(t, append(es, tiny(10)...)...)
	}
	b := upload(988)
	info, err := Check(bytes.NewReader(b), int64(len(b)), "", lim, db)
	if err != nil || info.Entries != 1000 {
		t.Errorf("1000 entries in all: %+v %v", info, err)
	}
	b = upload(989)
	_, err = Check(bytes.NewReader(b), int64(len(b)), "", lim, db)
	var e *Error
	if want := `zip bomb: entry "lib/x.jar" lists 989 entries, over the 988 left of 1000`; !errors.As(err, &e) || e.Msg != want {
		t.Errorf("1001 entries in all: %v, want %q", err, want)
	}
}

// TestZip64Entries checks that the entries of an archive with a ZIP64 end
// record, as zip.Writer writes for more than 65535, are counted right.
func TestZip64Entries(t *testing.T) {
	b := jar(t, append(tiny(70_000), mf("Main-Class: a.B"))...)
	lim := DefaultLimits
	info, err := Check(bytes.NewReader(b), int64(len(b)), "", lim, nil)
	if err != nil || info.Entries != 70_001 {
		t.Errorf("under the limit: %+v %v", info, err)
	}
	lim.MaxEntries = 70_000
	_, err = Check(bytes.NewReader(b), int64(len(b)), "", lim, nil)
	var e *Error
	if want := "zip bomb: the archive lists 70001 entries, over 70000"; !errors.As(err, &e) || e.Msg != want {
		t.Errorf("over the limit: %v, want %q", err, want)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"2.14.1", "2.16.0", -1}, {"2.16.0", "2.16", 0}, {"2.17.0", "2.16.0", 1},
		{"2.15.0-rc1", "2.15.0", -1}, {"5.3.17.RELEASE", "5.3.17", 0}, {"1.10", "1.9", 1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compare(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add(jar(f, mf("Main-Class: a.B")))
	f.Add([]byte("PK\x03\x04"))
	b := jar(f, mf("Main-Class: a.B"))
	f.Add(b[:len(b)-10]) // the end record cut short
	db, _ := LoadVulnDB("")
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := Check(bytes.NewReader(b), int64(len(b)), "", DefaultLimits, db)
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("an error that is not a refusal: %v", err)
		}
		if err == nil && info.MainClass == "" && !info.SpringBoot {
			t.Fatal("accepted without a way to start")
		}
	})
}

// FuzzNested feeds b as a nested JAR, stored or compressed, of a valid
// upload.
func FuzzNested(f *testing.F) {
	lib := jar(f, pom("org.apache.logging.log4j", "log4j-core", "2.14.1"))
	nested := jar(f, entry{name: "stored.jar", body: lib, stored: true}, entry{name: "compressed.jar", body: lib})
	f.Add(nested, true)
	f.Add(nested, false)
	db, err := LoadVulnDB("")
	if err != nil {
		f.Fatal(err)
	}
	lim := DefaultLimits
	lim.TempDir = f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte, stored bool) {
		up := jar(t, mf("Main-Class: a.B"), entry{name: "BOOT-INF/lib/x.jar", body: b, stored: stored})
		_, err := Check(bytes.NewReader(up), int64(len(up)), "", lim, db)
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("an error that is not a refusal: %v", err)
		}
		noneLeft(t, lim.TempDir)
	})
}
