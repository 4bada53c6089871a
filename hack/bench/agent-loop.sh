#!/usr/bin/env bash
# agent-loop.sh: what the Cameleer agent costs each exchange of a real Camel
# route, measured inside the app (issue 13): the benchmark app
# (hack/bench/agent/app) sends the HTTP benchmark's orders through ROUTE's
# route (bench: 10 processors doing almost nothing, the agent's worst case;
# orders: jackson, simple, a processor, choice, camel-http POST to
# hack/bench/agent/downstream) from one thread, with no HTTP server and no
# load generator in between, in rounds of COUNT exchanges (BenchApp's
# BENCH_LOOP). Each round prints the process's CPU time an exchange (GC and
# the agent's threads included), the wall time (throughput is its inverse),
# and the p50 and p99 of one exchange's time.
#
# Configs, the same JVM flags, pinned to CPU 1:
#   off      no agent
#   default  the agent with its default settings
#   full     CAMELEER_SAMPLE=1 CAMELEER_SAMPLE_LIMIT=0 CAMELEER_BODY_MAX=65536
# With the agent, hack/bench/agent/drain empties its buffer on CPU 0 as the
# runner would, at idle priority (SCHED_IDLE): the runner is on another host
# or core, and the drain must not delay the downstream beside it (at normal
# priority it made full capture's p99 3-5 times off's). RUNS runs of each config, interleaved, each a new JVM of
# ROUNDS rounds of which the first WARM are the JIT's; a run's figure is its
# median round, the table's the median run.
#
#   ROUTE=bench hack/bench/agent-loop.sh     (~6 min)
#   ROUTE=orders hack/bench/agent-loop.sh    (~8 min)
#
# Knobs: ROUTE (bench), RUNS (5), ROUNDS (14), WARM (6), COUNT (100000 for
# bench, 5000 for orders), JVM_FLAGS, AGENT_PORT (19464), DOWNSTREAM_PORT
# (18090). Needs java 17+, mvn, go, taskset, curl and 2 CPUs.
set -euo pipefail
cd "$(dirname "$0")/../.."
route=${ROUTE:-bench}
runs=${RUNS:-5}
rounds=${ROUNDS:-14}
warm=${WARM:-6}
case $route in
bench) count=${COUNT:-100000} ;;
orders) count=${COUNT:-5000} ;;
*) echo "agent-loop: no route $route (bench, orders)" >&2; exit 1 ;;
esac
agent_port=${AGENT_PORT:-19464}
downstream_port=${DOWNSTREAM_PORT:-18090}
jvm_flags=${JVM_FLAGS:--Xms256m -Xmx256m -XX:+UseParallelGC}
out=build/bench/agent
for tool in java mvn go taskset curl; do
	command -v $tool >/dev/null || { echo "agent-loop: needs $tool" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "agent-loop: needs 2 CPUs (app on 1, the rest on 0)" >&2; exit 1; }

# shellcheck source=agent/setup.sh
. hack/bench/agent/setup.sh

# run CFG: one JVM of CFG; prints "cpu wall p50 p99 dropped", its median round.
run() {
	local cfg=$1
	local -a env=(env -u CAMELEER_SAMPLE -u CAMELEER_SAMPLE_LIMIT -u CAMELEER_BODY_MAX -u CAMELEER_BUFFER_BYTES -u CAMELEER_STATS_SECONDS
		-u CAMELEER_REDACT -u CAMELEER_REDACT_DEFAULTS BENCH_ROUTE="direct:$route" BENCH_LOOP="${rounds}x$count"
		DOWNSTREAM_PORT="$downstream_port" CAMELEER_AGENT_PORT="$agent_port" CAMELEER_AGENT_TOKEN="$token")
	local -a agent=()
	case $cfg in
	off) ;;
	default) agent=(-javaagent:"$tmp/agent/cameleer-agent.jar") ;;
	full) agent=(-javaagent:"$tmp/agent/cameleer-agent.jar"); env+=(CAMELEER_SAMPLE=1 CAMELEER_SAMPLE_LIMIT=0 CAMELEER_BODY_MAX=65536) ;;
	esac
	# shellcheck disable=SC2086 # jvm_flags is a list of flags
	"${env[@]}" taskset -c 1 java $jvm_flags "${agent[@]}" -jar $out/app.jar >"$tmp/app.log" 2>&1 &
	local app=$!
	pids+=("$app")
	local drain=
	if [ "$cfg" != off ]; then
		for _ in $(seq 100); do
			curl -sf -o /dev/null "http://127.0.0.1:$agent_port/cameleer/jvm" && break
			sleep 0.1
		done
		CAMELEER_AGENT_TOKEN=$token chrt -i 0 taskset -c 0 "$tmp/drain" -port "$agent_port" >"$tmp/drain.log" 2>&1 &
		drain=$!
		pids+=("$drain")
	fi
	wait "$app" || { cat "$tmp/app.log" >&2; echo "agent-loop: the app failed" >&2; exit 1; }
	local dropped=-
	if [ -n "$drain" ]; then
		kill -TERM "$drain"; wait "$drain" || true
		dropped=$(sed -n 's/.* dropped \([0-9]*\) .*/\1/p' "$tmp/drain.log")
	fi
	grep '^bench-loop round' "$tmp/app.log" | awk -v warm="$warm" -v dropped="$dropped" '
		{ r = $3 + 0; if (r < warm) next; n++; cpu[n] = $5; wall[n] = $7; p50[n] = $9; p99[n] = $11 }
		function med(a,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return a[int((n + 1) / 2)] }
		END { printf "%s %s %s %s %s\n", med(cpu), med(wall), med(p50), med(p99), dropped }'
}

results=$out/loop-$route.tsv
mkdir -p $out
printf 'run\tconfig\tcpu_us\twall_us\tp50_us\tp99_us\tdropped\n' >"$results"
for r in $(seq "$runs"); do
	for cfg in off default full; do
		read -r cpu wall p50 p99 dropped < <(run $cfg)
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$cfg" "$cpu" "$wall" "$p50" "$p99" "$dropped" | tee -a "$results" >&2
	done
done

echo
echo "route $route, $runs runs of $((rounds - warm)) measured rounds of $count exchanges; medians:"
echo "| config | exchanges/s | CPU an exchange | p50 | p99 | exchanges/s vs off | CPU vs off | p99 vs off | dropped (each run) |"
echo "|---|---|---|---|---|---|---|---|---|"
awk -F'\t' 'NR > 1 { k = $2; n[k]++; cpu[k, n[k]] = $3; wall[k, n[k]] = $4; p50[k, n[k]] = $5; p99[k, n[k]] = $6; d[k] = d[k] " " $7 }
	function med(a, k,   i, j, t, m, v) { m = n[k]; for (i = 1; i <= m; i++) v[i] = a[k, i]
		for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		return v[int((m + 1) / 2)] }
	END {
		offw = med(wall, "off"); offc = med(cpu, "off"); off99 = med(p99, "off")
		split("off default full", cs, " ")
		for (i = 1; i <= 3; i++) { k = cs[i]; w = med(wall, k); c = med(cpu, k); q = med(p99, k)
			if (k == "off") printf "| off | %.0f | %.2f µs | %.2f µs | %.2f µs | — | — | — | — |\n", 1e6 / w, c, med(p50, k), q
			else printf "| %s | %.0f | %.2f µs | %.2f µs | %.2f µs | %+.1f %% | %+.1f %% | %+.1f %% |%s |\n", k, 1e6 / w, c, med(p50, k), q, (offw / w - 1) * 100, (c / offc - 1) * 100, (q / off99 - 1) * 100, d[k] }
	}' "$results"
echo "rows: $results"
