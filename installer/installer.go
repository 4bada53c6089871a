// Package installer holds install.sh, which the control plane and every
// cluster's controller serve at /install.sh and `make bundle` puts in the
// air-gapped bundle.
package installer

import (
	"bytes"
	_ "embed"
	"net/http"
	"regexp"

	"github.com/cameleer/cameleer/internal/downloads"
)

//go:embed install.sh
var script []byte

// Script is install.sh as it is in the tree: it knows no key to check a
// bundle with.
func Script() []byte { return script }

var base64Key = regexp.MustCompile(`^[A-Za-z0-9+/]+=*$`)

// WithSigningKey is install.sh with key (base64, as `cameleer version`
// prints it) written in as the key bundles are checked against. A key
// that is not base64 is not written in.
func WithSigningKey(key string) []byte {
	if !base64Key.MatchString(key) {
		return script
	}
	return bytes.Replace(script, []byte("\nsigning_key=\n"), []byte("\nsigning_key="+key+"\n"), 1)
}

// ServeScript answers install.sh with the key of the cameleer bins serves
// written in: the script then checks a bundle as that binary would.
func ServeScript(w http.ResponseWriter, r *http.Request, bins *downloads.Service) {
	s := script
	if f, bin, err := bins.Open(r.Context()); err == nil {
		f.Close()
		s = WithSigningKey(bin.SigningKey)
	}
	w.Header().Set("Content-Type", "text/x-shellscript")
	w.Write(s)
}
