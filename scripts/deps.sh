#!/usr/bin/env bash
# deps.sh: installs the Debian packages the build and the tests need, if they
# are missing. Go comes from /usr/local/go; the Go modules come from the
# module proxy during the build.
set -euo pipefail
# iptables, ipset and iproute2 are what the node itself needs on the host
# (kube-proxy, flannel and the network-policy controller call them).
pkgs=(build-essential file git libseccomp-dev busybox-static openjdk-17-jdk-headless iptables ipset iproute2 util-linux)
# docker.io (with its containerd and runc) is for the Docker orchestrator's
# tests, which start a private dockerd of their own. Its recommendations
# (needrestart, apparmor, cgroupfs-mount, criu) would change how this host
# runs services, so they are left out.
docker_pkgs=(docker.io)

missing() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"
	done
}
mapfile -t need < <(missing "${pkgs[@]}")
mapfile -t need_docker < <(missing "${docker_pkgs[@]}")
if [ ${#need[@]} -gt 0 ] || [ ${#need_docker[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}"
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ${#need_docker[@]} -gt 0 ]; then
	echo "deps: installing ${need_docker[*]}"
	# The packages' maintainer scripts start their services through
	# invoke-rc.d, which asks policy-rc.d first: 101 means "do not". This
	# host's own policy, if it has one, is put back afterwards.
	policy=/usr/sbin/policy-rc.d
	[ -e "$policy" ] && mv "$policy" "$policy.deps-saved"
	trap 'rm -f "$policy"; [ -e "$policy.deps-saved" ] && mv "$policy.deps-saved" "$policy"' EXIT
	printf '#!/bin/sh\n# deps.sh: no service starts while docker.io installs.\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	apt-get install -y -qq --no-install-recommends "${need_docker[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "deps: go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }
