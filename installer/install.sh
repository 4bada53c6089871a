#!/bin/sh
# install.sh: puts a cameleer binary on this host and installs the node.
#
#   sh install.sh [--binary PATH] [cameleer install flags...]
#
# The binary carries the whole engine, so this is also the air-gapped
# install: copy cameleer and this script to the host and run it. PATH
# defaults to ./cameleer beside this script. The binary goes to
# /usr/local/bin/cameleer; every other flag goes to `cameleer install`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
binary=$here/cameleer
if [ "${1:-}" = --binary ]; then
	binary=${2:?--binary needs a path}
	shift 2
fi
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
[ -f "$binary" ] || { echo "install.sh: no cameleer binary at $binary (pass --binary PATH)" >&2; exit 1; }
"$binary" version >/dev/null || { echo "install.sh: $binary does not run on this host" >&2; exit 1; }
if ! "$binary" version | grep -q '^engine payload'; then
	echo "install.sh: $binary carries no engine (build it with make)" >&2
	exit 1
fi
# Copy beside the target, then rename: a running cameleer keeps its inode.
install -m 0755 "$binary" /usr/local/bin/.cameleer.new
mv -f /usr/local/bin/.cameleer.new /usr/local/bin/cameleer
exec /usr/local/bin/cameleer install "$@"
