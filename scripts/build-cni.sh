#!/usr/bin/env bash
# build-cni.sh OUTDIR: builds the CNI plugins the engine uses (bridge,
# host-local, loopback, portmap and the flannel meta plugin, which still lives
# in containernetworking/plugins at v0.9.x) from embed/cni, one static binary
# each, stamped like upstream's scripts/release.sh (BuildVersion=<tag>, cgo off).
set -euo pipefail
out=${1:?usage: build-cni.sh OUTDIR}
cd "$(dirname "$0")/.."
. embed/versions
mod=github.com/containernetworking/plugins
export CGO_ENABLED=0 LDFLAGS="-X $mod/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION"
for p in main/bridge ipam/host-local main/loopback meta/portmap meta/flannel; do
	scripts/gobuild.sh embed/cni "$out/${p#*/}" "$mod/plugins/$p"
done
