package tunnel_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// upload posts b as the file field of a multipart upload.
func (e *env) upload(path, token string, b []byte, sha string) (int, string) {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if sha != "" {
		mw.WriteField("sha256", sha)
	}
	fw, _ := mw.CreateFormFile("file", "app.jar")
	fw.Write(b)
	mw.Close()
	req, _ := http.NewRequest("POST", "https://"+e.addr+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Error  string `json:"error"`
		SHA256 string `json:"sha256"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.Error != "" {
		return resp.StatusCode, out.Error
	}
	return resp.StatusCode, out.SHA256
}

func TestArtifactUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	e := newEnv(t, freeAddr(t))
	e.call("POST", "/api/v1/tenants", e.admin, map[string]string{"name": "acme", "tier": "low"}, nil)
	path := "/api/v1/tenants/acme/apps/orders/artifacts"
	good := smallJar(t)
	sum := sha256.Sum256(good)
	want := hex.EncodeToString(sum[:])

	if code, got := e.upload(path, e.admin, good, want); code != http.StatusCreated || got != want {
		t.Fatalf("upload: %d %s", code, got)
	}
	if code, got := e.upload(path, e.admin, good, ""); code != http.StatusOK || got != want {
		t.Errorf("same bytes again: %d %s, want 200 and the same digest", code, got)
	}
	vulnLib := testutil.Zip(t, map[string]string{"META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties": "groupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n"})
	var withVuln bytes.Buffer
	zw := zip.NewWriter(&withVuln)
	w, _ := zw.Create("META-INF/MANIFEST.MF")
	w.Write([]byte("Main-Class: a.B\r\n"))
	w, _ = zw.CreateHeader(&zip.FileHeader{Name: "lib/log4j-core-2.14.1.jar", Method: zip.Store})
	w.Write(vulnLib)
	zw.Close()
	for name, tc := range map[string]struct {
		b      []byte
		sha    string
		status int
		msg    string
	}{
		"not a jar":     {[]byte("#!/bin/sh\necho hi\n"), "", http.StatusUnsupportedMediaType, "not a ZIP"},
		"truncated jar": {good[:len(good)/2], "", http.StatusUnsupportedMediaType, "not a ZIP"},
		"sha mismatch":  {good, strings.Repeat("1", 64), http.StatusUnprocessableEntity, "SHA-256 mismatch"},
		"no main class": {testutil.Zip(t, map[string]string{"a/B.class": "x"}), "", http.StatusUnprocessableEntity, "no Main-Class"},
		"traversal":     {testutil.Zip(t, map[string]string{"META-INF/MANIFEST.MF": "Main-Class: a.B\r\n", "../../etc/cron.d/x": "x"}), "", http.StatusUnprocessableEntity, "'..'"},
		"log4shell":     {withVuln.Bytes(), "", http.StatusUnprocessableEntity, "CVE-2021-44228"},
	} {
		if code, msg := e.upload(path, e.admin, tc.b, tc.sha); code != tc.status || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %q, want %d with %q", name, code, msg, tc.status, tc.msg)
		}
	}
	// Only the good artifact is stored, once; no upload left half-written.
	files, _ := filepath.Glob(filepath.Join(e.dir, "cp", "artifacts", "*"))
	hidden, _ := filepath.Glob(filepath.Join(e.dir, "cp", "artifacts", ".*"))
	if len(files) != 1 || filepath.Base(files[0]) != want || len(hidden) != 0 {
		t.Errorf("stored files: %v, leftovers %v", files, hidden)
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Size() != int64(len(good)) {
		t.Errorf("stored artifact: %v %v", fi, err)
	}
	var list []struct{ SHA256 string }
	e.call("GET", path, e.admin, nil, &list)
	if len(list) != 1 || list[0].SHA256 != want {
		t.Errorf("artifacts listed: %+v", list)
	}
	// Another tenant cannot upload into acme.
	e.call("POST", "/api/v1/tenants", e.admin, map[string]string{"name": "globex", "tier": "low"}, nil)
	var tok struct{ Token string }
	e.call("POST", "/api/v1/tenants/globex/api-tokens", e.admin, nil, &tok)
	if code, _ := e.upload(path, tok.Token, good, ""); code != http.StatusNotFound {
		t.Errorf("globex uploaded into acme: %d", code)
	}
}
