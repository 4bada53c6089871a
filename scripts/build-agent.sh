#!/usr/bin/env bash
# build-agent.sh OUTDIR: compiles the Java agent (agent/, with Maven: its
# Camel bridge compiles against Camel's API, provided by the app at run
# time) and packs OUTDIR/cameleer-agent.jar reproducibly: sorted entries,
# times at SOURCE_DATE_EPOCH (jar honours --date), Java 17 bytecode. The
# bridge's classes (io/cameleer/agent/camel) go in as cameleer-bridge/**.bin,
# resources only the agent's own bridge loader defines, beside each Camel.
set -euo pipefail
out=$(realpath -m "${1:?usage: build-agent.sh OUTDIR}")
cd "$(dirname "$0")/.."
version=${AGENT_VERSION:-$(git describe --tags --always 2>/dev/null || echo dev)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Maven's output is under build/agent-mvn; stale classes of deleted sources
# must not reach the jar.
rm -rf build/agent-mvn/classes
mvn -q -B -f agent/pom.xml compile
mkdir -p "$tmp/classes"
cp -r build/agent-mvn/classes/. "$tmp/classes/"
bridge=io/cameleer/agent/camel
mkdir -p "$tmp/classes/cameleer-bridge/$bridge"
for c in "$tmp/classes/$bridge"/*.class; do
	n=$(basename "$c" .class)
	mv "$c" "$tmp/classes/cameleer-bridge/$bridge/$n.bin"
done
rmdir "$tmp/classes/$bridge"
printf 'Premain-Class: io.cameleer.agent.Agent\nImplementation-Title: cameleer-agent\nImplementation-Version: %s\n' "$version" >"$tmp/manifest"
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)
# jar's --date needs a time after 1980.
[ "${SOURCE_DATE_EPOCH:-0}" -gt 315532800 ] || date=1980-01-01T00:00:02Z
mkdir -p "$out"
cd "$tmp/classes"
jar --create --file "$out/cameleer-agent.jar" --manifest "$tmp/manifest" --date "$date" $(find . -type f | LC_ALL=C sort)
