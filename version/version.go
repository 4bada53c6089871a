// Package version holds the version of the Cameleer binaries, stamped at link
// time by the Makefile (-X github.com/cameleer/cameleer/version.Version=...).
package version

import "runtime"

// Version and Commit are set by the linker; a plain `go build` leaves them
// at their defaults.
var (
	Version = "v0.0.0-dev"
	Commit  = "unknown"
	// SigningKey is the public key air-gapped bundles are checked
	// against (base64 of its DER SubjectPublicKeyInfo; "": a binary built
	// without make, which trusts no bundle).
	SigningKey = ""
)

// GoVersion is the Go release the binary was built with.
func GoVersion() string { return runtime.Version() }
