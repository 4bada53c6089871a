#!/usr/bin/env bash
# agent-overhead.sh: what the Cameleer agent costs a real Camel app under
# load (issue 13). The app (hack/bench/agent/app: camel-main 4.22.0, a route
# of 10 processors behind the JDK's HTTP server) runs in three configs with
# the same JVM flags, pinned to CPU 1. ROUTE picks the route: bench (the
# default: 10 processors that do almost nothing, the agent's worst case) or
# orders (parse JSON, price, route by priority, POST to a downstream HTTP
# service, hack/bench/agent/downstream, run on CPU 0 beside the load).
#   off      no agent
#   default  the agent with its default settings (CAMELEER_SAMPLE 0.1, at most
#            CAMELEER_SAMPLE_LIMIT 100 traces a second)
#   full     the agent capturing everything: CAMELEER_SAMPLE=1, CAMELEER_SAMPLE_LIMIT=0
#            (no limit), CAMELEER_BODY_MAX=65536
# Each run: warm up, then measure with wrk (pinned to CPU 0, POSTing ~1 KB
# JSON-ish bodies), while hack/bench/agent/drain empties the agent's buffer
# as the runner would (else it fills and drops, and the agent would do less
# than in production), at idle priority (SCHED_IDLE), not to delay wrk. The configs are interleaved over ROUNDS rounds so that
# drift on the machine hits all alike; the table gives each config's median
# and its overhead against off. Beside requests/s and latency it gives the
# app's CPU time per request (utime+stime of the JVM over the measured run,
# from /proc): on a machine shared with other work that figure moves much
# less than throughput, which also measures how much CPU 1 the others took.
#
#   hack/bench/agent-overhead.sh                  the benchmark (~10 min with 3 rounds)
#   hack/bench/agent-overhead.sh profile default  one run of a config under JFR, then
#                                                 the top frames, the agent's first
#
# Knobs: ROUTE (bench), ROUNDS (3), WARMUP (20s), DURATION (30s), CONNS (8),
# PORT (18080), AGENT_PORT (19464), DOWNSTREAM_PORT (18090), JVM_FLAGS. Needs java 17+, mvn, go, wrk (apt-get install wrk),
# taskset, curl and 2 CPUs.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${ROUNDS:-3}
warmup=${WARMUP:-20s}
duration=${DURATION:-30s}
conns=${CONNS:-8}
port=${PORT:-18080}
agent_port=${AGENT_PORT:-19464}
route=${ROUTE:-bench}
downstream_port=${DOWNSTREAM_PORT:-18090}
case $route in bench | orders) ;; *) echo "agent-overhead: no route $route (bench, orders)" >&2; exit 1 ;; esac
jvm_flags=${JVM_FLAGS:--Xms256m -Xmx256m -XX:+UseParallelGC}
out=build/bench/agent
for tool in java mvn go wrk taskset curl; do
	command -v $tool >/dev/null || { echo "agent-overhead: needs $tool${tool/#wrk/ (apt-get install wrk)}" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "agent-overhead: needs 2 CPUs (app on 1, load on 0)" >&2; exit 1; }

# shellcheck source=agent/setup.sh
. hack/bench/agent/setup.sh
lua=hack/bench/agent/post.lua
url=http://127.0.0.1:$port/

# ms LATENCY: wrk's 1.23ms / 456.00us / 1.02s in milliseconds.
ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
		else printf "nan" }'
}

# cpu PID: the process's user+system CPU time so far, in clock ticks.
cpu() {
	# The fields after the command's ")" : utime and stime are the 12th and 13th.
	sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# start CONFIG [EXTRA_JVM_FLAGS...]: starts the app in CONFIG, waits for its
# first answer and, with the agent, starts the drain. Sets app and drain.
start() {
	local cfg=$1; shift
	# Every config from the agent's defaults, whatever the caller's
	# environment holds; a token as the runner gives each app.
	local -a env=(env -u CAMELEER_SAMPLE -u CAMELEER_SAMPLE_LIMIT -u CAMELEER_BODY_MAX -u CAMELEER_BUFFER_BYTES -u CAMELEER_STATS_SECONDS
		-u CAMELEER_REDACT -u CAMELEER_REDACT_DEFAULTS BENCH_ROUTE="direct:$route" DOWNSTREAM_PORT="$downstream_port" PORT="$port" CAMELEER_AGENT_PORT="$agent_port" CAMELEER_AGENT_TOKEN="$token")
	local -a agent=()
	case $cfg in
	off) ;;
	default) agent=(-javaagent:"$tmp/agent/cameleer-agent.jar") ;;
	full) agent=(-javaagent:"$tmp/agent/cameleer-agent.jar"); env+=(CAMELEER_SAMPLE=1 CAMELEER_SAMPLE_LIMIT=0 CAMELEER_BODY_MAX=65536) ;;
	*) echo "agent-overhead: no config $cfg (off, default, full)" >&2; exit 1 ;;
	esac
	# shellcheck disable=SC2086 # jvm_flags is a list of flags
	# nodelay: see BenchApp; on the command line, the same for every config.
	"${env[@]}" taskset -c 1 java $jvm_flags -Dsun.net.httpserver.nodelay=true "$@" "${agent[@]}" -jar $out/app.jar >"$tmp/app.log" 2>&1 &
	app=$!
	pids+=("$app")
	for _ in $(seq 120); do
		curl -sf -o /dev/null -H 'Content-Type: application/json' -d '{"priority":"high","id":"probe"}' "$url" && break
		kill -0 "$app" 2>/dev/null || { cat "$tmp/app.log" >&2; echo "agent-overhead: the app died" >&2; exit 1; }
		sleep 0.5
	done
	drain=
	if [ "$cfg" != off ]; then
		# On the load's CPU: the runner is not part of the app.
		CAMELEER_AGENT_TOKEN=$token chrt -i 0 taskset -c 0 "$tmp/drain" -port "$agent_port" >"$tmp/drain.log" 2>&1 &
		drain=$!
		pids+=("$drain")
	fi
}

# stop: stops the drain (which prints the agent's dropped count) and the app.
stop() {
	dropped=-
	if [ -n "$drain" ]; then
		kill -TERM "$drain"; wait "$drain" || true
		dropped=$(sed -n 's/.* dropped \([0-9]*\) .*/\1/p' "$tmp/drain.log")
		pulled=$(sed -n 's/.* events \([0-9]*\) .*/\1/p' "$tmp/drain.log")
		# A drain that could not pull leaves the agent's buffer to fill.
		grep -q ' errors 0$' "$tmp/drain.log" || echo "agent-overhead: the drain failed: $(cat "$tmp/drain.log")" >&2
	fi
	kill "$app"; wait "$app" || true
}

if [ "${1:-}" = profile ]; then
	cfg=${2:-default}
	jfr=$out/$route-$cfg.jfr
	rm -f "$jfr"
	start "$cfg" -XX:StartFlightRecording=filename="$jfr",settings=profile
	taskset -c 0 wrk -t1 -c"$conns" -d"$warmup" -s $lua "$url" >/dev/null
	taskset -c 0 wrk -t1 -c"$conns" -d"$duration" -s $lua "$url" | grep Requests/sec
	stop
	echo "dropped: $dropped"
	jfr print --stack-depth 64 --events jdk.ExecutionSample "$jfr" >"$tmp/samples"
	total=$(grep -c 'jdk.ExecutionSample' "$tmp/samples")
	echo "$total samples; top frames (self):"
	awk '/stackTrace = \[/ { getline; sub(/^ +/, ""); sub(/line:.*/, ""); print }' "$tmp/samples" | sort | uniq -c | sort -rn | head -20
	# Each sample charged to its first frame outside the JDK: the agent's
	# own cost is the samples charged to io.cameleer.agent (a JDK regex
	# running for the agent's redaction counts as the agent's).
	awk '/stackTrace = \[/ {s=1; first=""; next}
	     s && /^ *\]/ {s=0; print (first == "" ? "(JDK only)" : first); next}
	     s && first == "" && !/^ *(java|jdk|sun|com\.sun)\./ {f=$0; sub(/^ +/, "", f); sub(/line:.*/, "", f); first=f}' "$tmp/samples" >"$tmp/charged"
	echo "samples charged to the agent's own code: $(grep -c '^io\.cameleer\.agent' "$tmp/charged") of $total; by frame:"
	grep '^io\.cameleer\.agent' "$tmp/charged" | sort | uniq -c | sort -rn | head -20
	echo "recording: $jfr"
	exit 0
fi

results=$out/results-$route.tsv
mkdir -p $out
printf 'round\tconfig\treq_s\tp50_ms\tp99_ms\tcpu_us_req\tdropped\tevents\n' >"$results"
echo "route: $route; load before: $(uptime)"
for round in $(seq "$rounds"); do
	for cfg in off default full; do
		start "$cfg"
		taskset -c 0 wrk -t1 -c"$conns" -d"$warmup" -s $lua "$url" >/dev/null
		cpu0=$(cpu "$app")
		taskset -c 0 wrk -t1 -c"$conns" -d"$duration" --latency -s $lua "$url" >"$tmp/wrk"
		cpu1=$(cpu "$app")
		pulled=-
		stop
		if grep -q 'Non-2xx\|Socket errors' "$tmp/wrk"; then
			echo "agent-overhead: errors in $cfg round $round:" >&2
			grep 'Non-2xx\|Socket errors' "$tmp/wrk" >&2
		fi
		rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk")
		p50=$(ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk")")
		p99=$(ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk")")
		reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk")
		cpureq=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", (b - a) / hz * 1e6 / n}')
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$cfg" "$rps" "$p50" "$p99" "$cpureq" "$dropped" "$pulled" | tee -a "$results"
	done
done
echo "load after: $(uptime)"

# The medians, and each against off: + is slower (fewer requests/s, more latency).
awk -F'\t' 'NR > 1 { n[$2]++; r[$2, n[$2]] = $3; a[$2, n[$2]] = $4; b[$2, n[$2]] = $5; u[$2, n[$2]] = $6; d[$2] = d[$2] " " $7 }
function median(arr, c, k,   i, j, t, v) {
	for (i = 1; i <= k; i++) v[i] = arr[c, i]
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
	return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
}
END {
	for (c in n) { R[c] = median(r, c, n[c]); A[c] = median(a, c, n[c]); B[c] = median(b, c, n[c]); U[c] = median(u, c, n[c]) }
	printf "\n| config | requests/s | p50 | p99 | CPU per request | throughput cost | p99 cost | CPU cost | dropped (each run) |\n|---|---|---|---|---|---|---|---|---|\n"
	split("off default full", cs, " ")
	for (i = 1; i <= 3; i++) {
		c = cs[i]
		if (!(c in n)) continue
		cost = c == "off" ? "—" : sprintf("%+.1f %%", (R["off"] - R[c]) / R["off"] * 100)
		pc = c == "off" ? "—" : sprintf("%+.1f %%", (B[c] - B["off"]) / B["off"] * 100)
		uc = c == "off" ? "—" : sprintf("%+.1f %%", (U[c] - U["off"]) / U["off"] * 100)
		printf "| %s | %.0f | %.2f ms | %.2f ms | %.0f µs | %s | %s | %s |%s |\n", c, R[c], A[c], B[c], U[c], cost, pc, uc, d[c]
	}
}' "$results"
echo "runs: $results"
