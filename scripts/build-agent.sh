#!/usr/bin/env bash
# build-agent.sh OUTDIR: compiles the Java agent (agent/src) with the host's
# JDK and packs OUTDIR/cameleer-agent.jar reproducibly: sorted entries, times
# at SOURCE_DATE_EPOCH (jar honours --date), Java 17 bytecode.
set -euo pipefail
out=$(realpath -m "${1:?usage: build-agent.sh OUTDIR}")
cd "$(dirname "$0")/.."
version=${AGENT_VERSION:-$(git describe --tags --always 2>/dev/null || echo dev)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
javac --release 17 -encoding UTF-8 -d "$tmp/classes" $(find agent/src -name '*.java' | sort)
printf 'Premain-Class: io.cameleer.agent.Agent\nImplementation-Title: cameleer-agent\nImplementation-Version: %s\n' "$version" >"$tmp/manifest"
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)
# jar's --date needs a time after 1980.
[ "${SOURCE_DATE_EPOCH:-0}" -gt 315532800 ] || date=1980-01-01T00:00:02Z
mkdir -p "$out"
cd "$tmp/classes"
jar --create --file "$out/cameleer-agent.jar" --manifest "$tmp/manifest" --date "$date" $(find . -type f | sort)
