package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestHandler(t *testing.T) {
	built := fstest.MapFS{
		"index.html":         {Data: []byte("<!doctype html><title>Cameleer</title>")},
		"assets/index-1.js":  {Data: []byte("console.log(1)")},
		"assets/index-1.css": {Data: []byte("body{}")},
	}
	get := func(files fstest.MapFS, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		handler(files).ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	for path, want := range map[string]string{
		"/":                  "<title>Cameleer</title>",
		"/runners":           "<title>Cameleer</title>", // routed in the browser
		"/apps/dev/invoices": "<title>Cameleer</title>",
		"/assets/index-1.js": "console.log(1)",
		"/../../etc/passwd":  "<title>Cameleer</title>",
	} {
		w := get(built, path)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), want) {
			t.Errorf("%s: %d %q", path, w.Code, w.Body)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: content policy %q", path, csp)
		}
	}
	if cc := get(built, "/assets/index-1.css").Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("a built asset's Cache-Control: %q", cc)
	}
	if cc := get(built, "/").Header().Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("index.html's Cache-Control: %q", cc)
	}
	w := get(fstest.MapFS{".keep": {}}, "/")
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "built without its console") {
		t.Errorf("not built: %d %q", w.Code, w.Body)
	}
}
