#!/usr/bin/env bash
# build-local-path-provisioner.sh OUTDIR: builds local-path-provisioner from
# embed/local-path-provisioner like upstream's scripts/build (cgo off,
# main.VERSION=<tag>). Upstream's module zip ships an empty vendor/ dir, which
# only matters when it is the main module; built as a dependency of our nested
# module it is ignored, so no -mod=mod is needed.
set -euo pipefail
out=${1:?usage: build-local-path-provisioner.sh OUTDIR}
cd "$(dirname "$0")/.."
. embed/versions
CGO_ENABLED=0 LDFLAGS="-X main.VERSION=$LOCAL_PATH_PROVISIONER_VERSION" \
	scripts/gobuild.sh embed/local-path-provisioner "$out/local-path-provisioner" github.com/rancher/local-path-provisioner
