package artifact

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
)

type entry struct {
	name   string
	body   []byte
	stored bool // no compression
}

func jar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		method := zip.Deflate
		if e.stored {
			method = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mf(attrs string) entry {
	return entry{name: "META-INF/MANIFEST.MF", body: []byte("Manifest-Version: 1.0\r\n" + attrs + "\r\n")}
}

func pom(group, artifact, version string) entry {
	return entry{name: "META-INF/maven/" + group + "/" + artifact + "/pom.properties",
		body: []byte("#Generated\ngroupId=" + group + "\nartifactId=" + artifact + "\nversion=" + version + "\n")}
}

func check(t *testing.T, b []byte, sha string) (Info, error) {
	t.Helper()
	db, err := LoadVulnDB("")
	if err != nil {
		t.Fatal(err)
	}
	return Check(bytes.NewReader(b), int64(len(b)), sha, DefaultLimits, db)
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
	// A Spring Boot layout without a Main-Class is still startable.
	if _, err := check(t, jar(t, entry{name: "BOOT-INF/classes/a/B.class", body: []byte("x")}), ""); err != nil {
		t.Errorf("boot layout without manifest: %v", err)
	}
}

func TestRefuses(t *testing.T) {
	main := mf("Main-Class: a.B")
	vulnerable := jar(t, pom("org.apache.logging.log4j", "log4j-core", "2.14.1"))
	deep := jar(t, entry{name: "inner.jar", body: jar(t, pom("org.apache.commons", "commons-text", "1.9")), stored: true})
	bomb := bytes.Repeat([]byte{0}, 8<<20)
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
