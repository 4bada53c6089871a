#!/usr/bin/env bash
# hack/bench/deploy.sh: upload -> first HTTP 200 through Traefik, for
# docs/benchmarks.md.
#
#   sudo hack/bench/deploy.sh [RUNS]
#
# Installs a node from bin/cameleer in a fresh data dir, starts
# bin/cameleer-controlplane on loopback, registers the node with it, then
# RUNS times: compiles a new version of a small Java HTTP server (javac),
# uploads it, deploys it to dev through the API and times until Traefik on
# :80 answers 200 with the new version (JVM start included), and until the
# deployment reports running (rollout complete). The first run also pays
# for the JRE base layers going into the node's registry. The node is reset
# and the control plane stopped at the end. Needs root, javac, and the node's ports free.
set -euo pipefail
bin=$(realpath "${CAMELEER_BIN:-bin/cameleer}")
cpbin=$(realpath "${CONTROLPLANE_BIN:-bin/cameleer-controlplane}")
dir=${DATA_DIR:-/var/lib/cameleer-bench}
runs=${1:-5}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cp=https://127.0.0.1:$port
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN{printf "%.2f", a-b}'; }
cleanup() {
	[ -n "${cppid:-}" ] && kill "$cppid" 2>/dev/null && wait "$cppid" 2>/dev/null
	"$bin" reset --data-dir "$dir" >/dev/null || true
	rm -rf "$work"
}
[ -e "$dir" ] && "$bin" reset --data-dir "$dir" >/dev/null
trap cleanup EXIT

echo "== node and control plane"
"$bin" install --data-dir "$dir" >/dev/null
"$cpbin" serve --data-dir "$work/cp" --listen "127.0.0.1:$port" --url "$cp" >"$work/cp.log" 2>&1 &
cppid=$!
until [ -s "$work/cp/admin.token" ] && curl -skf "$cp/healthz" >/dev/null; do sleep 0.2; done
admin=$(cat "$work/cp/admin.token")
api() { curl -sk -H "Authorization: Bearer $admin" "$@"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
api -d '{"name":"acme","tier":"high"}' "$cp/api/v1/tenants" >/dev/null
api -d '{"name":"dev"}' "$cp/api/v1/tenants/acme/environments" >/dev/null
token=$(api -d '{}' "$cp/api/v1/tenants/acme/runner-tokens" | json '["token"]')
"$bin" token redeem "$token" --data-dir "$dir" --name bench >/dev/null
until api "$cp/api/v1/tenants/acme/runners" | json '[0]["connected"]' | grep -q True; do sleep 0.5; done

echo "== upload -> first 200 through Traefik ($runs runs)"
mkdir -p "$work/app"
for i in $(seq "$runs"); do
	cat >"$work/app/Bench.java" <<JAVA
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
public class Bench {
    public static void main(String[] args) throws Exception {
        HttpServer s = HttpServer.create(new InetSocketAddress(8080), 0);
        s.createContext("/", x -> { byte[] b = "bench v$i\n".getBytes(); x.sendResponseHeaders(200, b.length); x.getResponseBody().write(b); x.close(); });
        s.start();
    }
}
JAVA
	(cd "$work/app" && javac --release 17 Bench.java && printf 'Main-Class: Bench\n' >m && jar --create --file bench.jar --manifest m Bench.class)
	t0=$(now)
	sha=$(api -F "file=@$work/app/bench.jar" "$cp/api/v1/tenants/acme/apps/bench/artifacts" | json '["sha256"]')
	up=$(since "$t0")
	id=$(api -d "{\"app\":\"bench\",\"artifact\":\"$sha\"}" "$cp/api/v1/tenants/acme/environments/dev/deployments" | json '["id"]')
	first="" running=""
	while [ -z "$first" ] || [ -z "$running" ]; do
		if [ -z "$first" ] && curl -sf --max-time 2 -H "Host: bench.dev.acme.localhost" http://127.0.0.1/ 2>/dev/null | grep -q "bench v$i$"; then
			first=$(since "$t0")
		fi
		if [ -z "$running" ]; then
			phase=$(api "$cp/api/v1/tenants/acme/environments/dev/deployments/$id" | json '["phase"]')
			[ "$phase" = failed ] && { api "$cp/api/v1/tenants/acme/environments/dev/deployments/$id"; exit 1; }
			[ "$phase" = running ] && running=$(since "$t0")
		fi
		sleep 0.05
	done
	# Traefik may route the new pod a moment before or after the rollout
	# counts as complete.
	echo "run $i: upload $up s, first 200 of the new version $first s, deployment running $running s"
done
