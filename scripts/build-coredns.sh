#!/usr/bin/env bash
# build-coredns.sh OUTDIR: builds coredns from embed/coredns like coredns's
# Makefile: cgo off, tags grpcnotrace, coremain.GitCommit set to what
# `git describe --dirty --always` prints on the release tag (the tag itself).
set -euo pipefail
out=${1:?usage: build-coredns.sh OUTDIR}
cd "$(dirname "$0")/.."
. embed/versions
CGO_ENABLED=0 TAGS=grpcnotrace LDFLAGS="-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
	scripts/gobuild.sh embed/coredns "$out/coredns" github.com/coredns/coredns
