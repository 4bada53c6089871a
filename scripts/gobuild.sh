#!/usr/bin/env bash
# gobuild.sh MODULE_DIR OUTPUT PACKAGE [extra go build args...]
#
# Builds one engine binary from a nested module under embed/ with the flags
# every part shares: static, trimmed paths, stripped, no VCS stamping, so the
# same sources give the same bytes. Set CGO_ENABLED=1 for parts that need cgo;
# they are linked statically (-extldflags -static) all the same. TAGS and
# LDFLAGS add build tags and linker flags.
set -euo pipefail
mod=$1 out=$2 pkg=$3
shift 3
ldflags="-s -w -buildid= ${LDFLAGS:-}"
if [ "${CGO_ENABLED:-0}" = 1 ]; then
	ldflags="$ldflags -linkmode external -extldflags -static"
fi
export CGO_ENABLED=${CGO_ENABLED:-0}
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export GONOSUMDB="${GONOSUMDB:-github.com/k3s-io/*,github.com/flannel-io/flannel}"
mkdir -p "$(dirname "$out")"
out=$(realpath -m "$out")
go build -C "$mod" -trimpath -tags "${TAGS:-}" -ldflags "$ldflags" -o "$out" "$@" "$pkg"
