#!/usr/bin/env bash
# hack/bench/sizes.sh: the size of bin/cameleer, of its payload, and of each
# part of the payload (uncompressed, as extracted), for docs/benchmarks.md.
#
#   hack/bench/sizes.sh [bin/cameleer]
set -euo pipefail
bin=${1:-bin/cameleer}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" version -o json >"$tmp/v.json"
printf '%-28s %10s\n' "bin/cameleer" "$(( $(stat -c %s "$bin") >> 20 )) MB"
python3 - "$tmp/v.json" "$(stat -c %s "$bin")" <<'PY'
import json, os, sys
v = json.load(open(sys.argv[1]))
p = v["payload"]
print("%-28s %7d MB (zstd)" % ("payload", p["size"] >> 20))
print("%-28s %7d MB" % ("cameleer itself", (int(sys.argv[2]) - p["size"]) >> 20))
PY
# Uncompressed, from the build tree the payload is packed from.
root=build/payload
part() { printf '%-28s %7s MB\n' "$1" "$(du -cbL "${@:2}" | tail -1 | awk '{printf "%.1f", $1/1048576}')"; }
part "kubernetes (multicall)" "$root/bin/kube"
part kine "$root/bin/kine"
part "containerd, shim, ctr" "$root/bin/containerd" "$root/bin/containerd-shim-runc-v2" "$root/bin/ctr"
part runc "$root/bin/runc"
part "flannel + netpol" "$root/bin/cameleer-net"
part "CNI plugins" "$root"/cni/*
part "traefik CRDs" "$root"/manifests/*
for img in "$root"/images/*.tar; do
	part "image $(basename "$img" .tar)" "$img"
done
