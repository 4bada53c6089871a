package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Stamped by scripts/build-network.sh from embed/versions:
//
//	-X main.flannelVersion=$FLANNEL_VERSION -X main.kubeRouterVersion=$KUBE_ROUTER_VERSION
//
// Unstamped builds (go run, go test) fall back to the module versions
// recorded in the binary.
var (
	flannelVersion    string
	kubeRouterVersion string
)

const (
	flannelModule    = "github.com/flannel-io/flannel"
	kubeRouterModule = "github.com/cloudnativelabs/kube-router/v2"
	clientGoModule   = "k8s.io/client-go"
)

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "flannel %s\n", orModule(flannelVersion, flannelModule))
	fmt.Fprintf(w, "kube-router %s\n", orModule(kubeRouterVersion, kubeRouterModule))
	fmt.Fprintf(w, "client-go %s\n", orModule("", clientGoModule))
	fmt.Fprintf(w, "go %s\n", runtime.Version())
}

// orModule returns stamped, else the version of module (after replace
// directives) from the build info, else "unknown".
func orModule(stamped, module string) string {
	if stamped != "" {
		return stamped
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path != module {
				continue
			}
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "unknown"
}
