#!/usr/bin/env bash
# build-runc.sh OUTDIR: builds runc from embed/runc like runc's `make static`:
# tags "seccomp urfave_cli_no_docs netgo osusergo", cgo (libcontainer/nsenter,
# libseccomp from Debian's libseccomp-dev, linked from libseccomp.a).
# main.version comes from upstream's embedded VERSION file. main.gitCommit
# (upstream: `git describe --long`) is left unset: module zips carry no git data
# and the proxy does not report the tag's commit, so `runc --version` prints no
# "commit:" line, as upstream does for an unset gitCommit.
# Upstream links static-pie; we link plain static (gobuild.sh) like every part.
set -euo pipefail
out=${1:?usage: build-runc.sh OUTDIR}
cd "$(dirname "$0")/.."
. embed/versions
test -e /usr/lib/x86_64-linux-gnu/libseccomp.a -o -e /usr/lib/libseccomp.a ||
	{ echo "build-runc.sh: libseccomp.a missing (apt-get install libseccomp-dev)" >&2; exit 1; }
CGO_ENABLED=1 TAGS="seccomp urfave_cli_no_docs netgo osusergo" \
	scripts/gobuild.sh embed/runc "$out/runc" github.com/opencontainers/runc
