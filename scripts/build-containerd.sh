#!/usr/bin/env bash
# build-containerd.sh OUTDIR: builds containerd, containerd-shim-runc-v2 and ctr
# from embed/containerd, stamped like containerd's Makefile (STATIC=1 release):
# version.Version=<tag>, version.Package. version.Revision (upstream: the git
# commit) stays empty: module zips carry no git data and the proxy does not
# report the tag's commit, so `containerd --version` ends after the version.
#
# Tags: upstream's static set (urfave_cli_no_docs osusergo netgo static_build)
# plus no_btrfs no_devmapper no_zfs: snapshotters the engine never uses (btrfs
# needs cgo anyway). The shim gets upstream's extra no_grpc (ttrpc only).
set -euo pipefail
out=${1:?usage: build-containerd.sh OUTDIR}
cd "$(dirname "$0")/.."
. embed/versions
pkg=github.com/containerd/containerd/v2
export CGO_ENABLED=0
export LDFLAGS="-X $pkg/version.Version=$CONTAINERD_VERSION -X $pkg/version.Package=$pkg"
tags="urfave_cli_no_docs osusergo netgo static_build no_btrfs no_devmapper no_zfs"
TAGS="$tags" scripts/gobuild.sh embed/containerd "$out/containerd" $pkg/cmd/containerd
TAGS="$tags" scripts/gobuild.sh embed/containerd "$out/ctr" $pkg/cmd/ctr
TAGS="$tags no_grpc" scripts/gobuild.sh embed/containerd "$out/containerd-shim-runc-v2" $pkg/cmd/containerd-shim-runc-v2
