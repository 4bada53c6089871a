#!/usr/bin/env bash
# build-traefik.sh OUTDIR: builds OUTDIR/traefik from embed/traefik, Traefik's
# own main package (github.com/traefik/traefik/v3/cmd/traefik, pinned with a
# `tool` directive) with no source patches; see scripts/traefik/README.md.
# Flags as in Traefik's Makefile/.goreleaser: cgo off, -trimpath, -s -w and the
# version stamp. BuildDate is the release commit time the module proxy reports
# for the pinned version (not the wall clock), so two builds give the same bytes.
set -euo pipefail
out=${1:?usage: build-traefik.sh OUTDIR}
cd "$(dirname "$0")/.."
. embed/versions
mod=github.com/traefik/traefik/v3
pinned=$(go list -C embed/traefik -m -f '{{.Version}}' "$mod")
if [ "$pinned" != "$TRAEFIK_VERSION" ]; then
	echo "build-traefik: embed/traefik pins $mod $pinned but embed/versions says $TRAEFIK_VERSION" >&2
	exit 1
fi
date=$(go list -C embed/traefik -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "$mod")
v=$mod/pkg/version
CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly" \
	LDFLAGS="-X $v.Version=$TRAEFIK_VERSION -X $v.BuildDate=$date" \
	scripts/gobuild.sh embed/traefik "$out/traefik" "$mod/cmd/traefik"
