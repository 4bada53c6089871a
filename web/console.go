// Package web is the console: the TypeScript single-page app in this
// directory, built by make into dist/ and embedded here. The control plane
// serves it at / on its one port, beside the API it calls.
package web

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed all:dist
var dist embed.FS

// contentPolicy lets the console run its own script and nothing else: no
// other host, no inline script. Inline styles are allowed: the route
// diagram positions its nodes with style attributes.
const contentPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console's files, and index.html for every other path:
// the app routes in the browser. Built files with a hash in their name are
// kept by the browser for good; index.html is asked for every time.
func Handler() http.Handler {
	files, _ := fs.Sub(dist, "dist")
	return handler(files)
}

func handler(files fs.FS) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentPolicy)
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if st, err := fs.Stat(files, name); err != nil || st.IsDir() || name == ".keep" {
			name = "index.html"
		}
		b, err := fs.ReadFile(files, name)
		if err != nil {
			h.Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte("This control plane was built without its console (make builds it into web/dist). The API is at /api/v1/.\n"))
			return
		}
		if strings.HasPrefix(name, "assets/") {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	})
}
