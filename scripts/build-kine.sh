#!/usr/bin/env bash
# build-kine.sh OUTDIR: builds kine (etcd API over SQLite) from embed/kine.
#
# Mirrors kine's scripts/build: same -X stamps and CGO_CFLAGS, cgo for
# mattn/go-sqlite3 (bundled amalgamation, not the libsqlite3 tag), linked
# statically. Tags differ on purpose: upstream's `nats` (embedded NATS server,
# ~+10 MB) is left out since we only use SQLite; netgo/osusergo keep the static
# glibc link free of NSS; sqlite_omit_load_extension and no_antithesis_sdk (test
# SDK pulled in via nats-server) drop the dlopen calls a static binary cannot use.
set -euo pipefail
out=${1:?usage: build-kine.sh OUTDIR}
cd "$(dirname "$0")/.."
. embed/versions
# Upstream stamps `git rev-parse --short HEAD`. Module zips carry no git data and
# the proxy only sometimes reports Origin.Hash, so the commit is pinned here
# (from the proxy's .info Origin for that tag) to keep builds reproducible.
case $KINE_VERSION in
v0.14.8) commit=b198647 ;;
*) commit=HEAD ;; # upstream's default
esac
CGO_ENABLED=1 \
CGO_CFLAGS="-O2 -DSQLITE_ENABLE_DBSTAT_VTAB=1 -DSQLITE_USE_ALLOCA=1" \
TAGS="netgo osusergo sqlite_omit_load_extension no_antithesis_sdk" \
LDFLAGS="-X github.com/k3s-io/kine/pkg/version.Version=$KINE_VERSION -X github.com/k3s-io/kine/pkg/version.GitCommit=$commit" \
	scripts/gobuild.sh embed/kine "$out/kine" github.com/k3s-io/kine
