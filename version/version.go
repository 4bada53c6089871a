// Package version holds the version of the Cameleer binaries, stamped at link
// time by the Makefile (-X github.com/cameleer/cameleer/version.Version=...).
package version

import (
	"runtime"
	"runtime/debug"
)

// Version and Commit are set by the linker; a plain `go build` leaves them
// at their defaults.
var (
	Version = "v0.0.0-dev"
	Commit  = "unknown"
)

// Module is a Go module compiled into the running binary.
type Module struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	// Sum is the module's go.sum hash, e.g. "h1:...".
	Sum string `json:"sum,omitempty"`
}

// GoVersion is the Go release the binary was built with.
func GoVersion() string { return runtime.Version() }

// Dependency reports the version of a module compiled into the running
// binary, if it is one.
func Dependency(path string) (Module, bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Module{}, false
	}
	for _, d := range bi.Deps {
		if d.Path != path {
			continue
		}
		if d.Replace != nil {
			d = d.Replace
		}
		return Module{Path: path, Version: d.Version, Sum: d.Sum}, true
	}
	return Module{}, false
}
