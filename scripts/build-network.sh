#!/usr/bin/env bash
# build-network.sh OUTDIR
#
# Builds OUTDIR/cameleer-net, the pod network of the engine (flannel vxlan and
# the kube-router network policy controller), from the nested module
# embed/network: static (CGO_ENABLED=0), reproducible, with the flannel and
# kube-router versions of embed/versions stamped in.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$(realpath -m "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

version() {
	local v
	v=$(sed -n "s/^$1=//p" embed/versions)
	[ -n "$v" ] || { echo "$0: $1 is not set in embed/versions" >&2; exit 1; }
	echo "$v"
}
flannel=$(version FLANNEL_VERSION)
kuberouter=$(version KUBE_ROUTER_VERSION)

# The stamped versions must be the ones the module builds.
grep -q "^	github.com/flannel-io/flannel $flannel\$" embed/network/go.mod ||
	{ echo "$0: embed/network/go.mod does not require flannel $flannel" >&2; exit 1; }
grep -q "=> github.com/k3s-io/kube-router/v2 $kuberouter\$" embed/network/go.mod ||
	{ echo "$0: embed/network/go.mod does not replace kube-router with $kuberouter" >&2; exit 1; }

LDFLAGS="-X main.flannelVersion=$flannel -X main.kubeRouterVersion=$kuberouter"
LDFLAGS="$LDFLAGS -X github.com/flannel-io/flannel/pkg/version.Version=$flannel"
LDFLAGS="$LDFLAGS -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$kuberouter"
export LDFLAGS CGO_ENABLED=0
scripts/gobuild.sh embed/network "$out/cameleer-net" .
