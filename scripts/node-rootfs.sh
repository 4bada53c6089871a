#!/usr/bin/env bash
# node-rootfs.sh OUT.tar: the root file system of the hosts the multi-node
# test runs as containers (test/multinode), built from Debian's packages with
# debootstrap: a bare Debian 12 with what a node takes from its host
# (iptables, ipset, iproute2, mount) and what install.sh uses (curl,
# openssl). Nothing of cameleer is in it: the test puts the binary in, or
# has install.sh download it, as on a real host.
set -euo pipefail
out=$1
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
pkgs=iptables,ipset,iproute2,procps,kmod,mount,util-linux,curl,ca-certificates,openssl,conntrack,iputils-ping
if [ -s "$out" ] && [ "$(cat "$out.pkgs" 2>/dev/null)" = "$pkgs" ]; then
	exit 0
fi
command -v debootstrap >/dev/null || { echo "node-rootfs: debootstrap is missing (scripts/deps.sh installs it)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$(dirname "$out")/.rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "node-rootfs: debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include="$pkgs" bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
	{ tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$work/root"/var/cache/apt/archives/*.deb "$work/root"/var/lib/apt/lists/*
tar -C "$work/root" -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$out"
echo "$pkgs" >"$out.pkgs"
