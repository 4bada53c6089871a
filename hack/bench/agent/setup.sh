# setup.sh: sourced by hack/bench/agent-overhead.sh and agent-loop.sh, from
# the repository's root, with route and downstream_port set. Makes $tmp (and
# removes it on exit with every process in pids), a token for the agent as
# the runner gives each app, and builds the agent ($tmp/agent), the app
# (build/bench/agent/app.jar) and the drain ($tmp/drain); for the orders
# route, starts the downstream on CPU 0, beside the rest, off the app's CPU:
# it stands for another system.
tmp=$(mktemp -d)
token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "building the agent, the app and the drain" >&2
# Which agent is measured: the work tree's, so say how it stands.
echo "agent: last commit $(git log -1 --format='%h %cd' -- agent), $(git status --short agent | wc -l) files changed since"
scripts/build-agent.sh "$tmp/agent" >&2
mvn -q -B -f hack/bench/agent/app/pom.xml package >&2
go build -o "$tmp/drain" ./hack/bench/agent/drain
if [ "$route" = orders ]; then
	go build -o "$tmp/downstream" ./hack/bench/agent/downstream
	taskset -c 0 "$tmp/downstream" -port "$downstream_port" >"$tmp/downstream.log" 2>&1 &
	pids+=("$!")
fi
