#!/usr/bin/env bash
# deps.sh: installs the Debian packages the build and the tests need, if they
# are missing. Go comes from /usr/local/go; the Go modules come from the
# module proxy during the build.
set -euo pipefail
# iptables, ipset and iproute2 are what the node itself needs on the host
# (kube-proxy, flannel and the network-policy controller call them).
pkgs=(build-essential file git libseccomp-dev busybox-static openjdk-17-jdk-headless iptables ipset iproute2 util-linux)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "deps: go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }
