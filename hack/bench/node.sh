#!/usr/bin/env bash
# hack/bench/node.sh: what a node costs on this host, for docs/benchmarks.md.
#
#   sudo CAMELEER_BIN=bin/cameleer hack/bench/node.sh [RUNS]
#
# 1. install -> node Ready and -> everything Ready, from a fresh data dir
#    (payload extraction included), each line of install's progress stamped
#    with the seconds since install started;
# 2. a new pod -> Running, RUNS times (image already on the node);
# 3. idle memory (RSS and PSS) of every engine process after a minute idle.
# The node is reset at the end. Needs root and the node's ports free.
set -euo pipefail
bin=$(realpath "${CAMELEER_BIN:-bin/cameleer}")
dir=${DATA_DIR:-/var/lib/cameleer-bench}
runs=${1:-5}
export CAMELEER_DATA_DIR=$dir
kubectl() { "$bin" kubectl "$@"; }
now() { date +%s.%N; }
[ -e "$dir" ] && "$bin" reset --data-dir "$dir" >/dev/null
trap '"$bin" reset --data-dir "$dir" >/dev/null' EXIT

echo "== install (fresh data dir $dir)"
start=$(now)
"$bin" install --data-dir "$dir" | while IFS= read -r line; do
	printf '%7.2f  %s\n' "$(awk -v a="$(now)" -v b="$start" 'BEGIN{print a-b}')" "$line"
done | grep -E 'ready|Ready|Extracting|Started'

echo "== new pod -> Running ($runs runs)"
busybox=$(kubectl get configmap -n kube-system local-path-config -o jsonpath='{.data.helperPod\.yaml}' | grep -o 'cameleer.local/busybox:[^ ]*')
kubectl run warm --image="$busybox" --restart=Never -- sleep 3600 >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Running pod/warm --timeout=120s >/dev/null
for i in $(seq "$runs"); do
	t0=$(now)
	kubectl run "bench-$i" --image="$busybox" --restart=Never -- sleep 3600 >/dev/null
	kubectl wait --for=jsonpath='{.status.phase}'=Running "pod/bench-$i" --timeout=120s >/dev/null
	awk -v a="$(now)" -v b="$t0" -v i="$i" 'BEGIN{printf "run %d: %.2f s\n", i, a-b}'
done
kubectl delete pod warm $(seq -f 'bench-%g' "$runs") --wait=false >/dev/null

echo "== idle memory after 60 s (RSS counts the shared kube binary's pages in every process; PSS shares them out)"
sleep 60
mem() { awk -v k="$2:" '$1 == k {printf "%d", $2/1024}' "/proc/$1/smaps_rollup"; }
rss_total=0 pss_total=0
printf '%-26s %8s %8s\n' process RSS PSS
while read -r name pid; do
	r=$(mem "$pid" Rss) p=$(mem "$pid" Pss)
	rss_total=$((rss_total + r)) pss_total=$((pss_total + p))
	printf '%-26s %5d MB %5d MB\n' "$name" "$r" "$p"
done < <("$bin" status --data-dir "$dir" -o json | python3 -c '
import json, sys
st = json.load(sys.stdin)
print("cameleer-run", st["pid"])
for c in st["components"]:
    if c.get("pid"):
        print(c["name"], c["pid"])')
printf '%-26s %5d MB %5d MB\n' "engine total" "$rss_total" "$pss_total"
shims=0 n=0
for p in $(pgrep -f containerd-shim-runc-v2 || true); do shims=$((shims + $(mem "$p" Pss))) n=$((n + 1)); done
printf '%-26s %14d MB PSS (%d shims)\n' "containerd shims" "$shims" "$n"
