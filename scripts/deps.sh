#!/usr/bin/env bash
# deps.sh: installs the Debian packages the build and the tests need, if they
# are missing. Go comes from /usr/local/go; the Go modules come from the
# module proxy during the build.
set -euo pipefail
# iptables, ipset and iproute2 are what the node itself needs on the host
# (kube-proxy, flannel and the network-policy controller call them). Maven
# builds the agent against Camel's API and the real Camel apps the tests
# run (from Maven Central, cached in ~/.m2). curl and openssl are what
# install.sh uses (downloads, the bundle's signature); jq reads the API's
# answers in scripts/quickstart.sh. debootstrap builds the root file system
# of the multi-node test's hosts (scripts/node-rootfs.sh).
pkgs=(build-essential file git libseccomp-dev busybox-static openjdk-17-jdk-headless maven iptables ipset iproute2 util-linux curl openssl jq debootstrap)
# Packages that come with a service, installed without starting it.
# docker.io (with its containerd and runc) is for the Docker orchestrator's
# tests, which start a private dockerd of their own. Its recommendations
# (needrestart, apparmor, cgroupfs-mount, criu) would change how this host
# runs services, so they are left out. clickhouse-server (and its client, to
# look around by hand) is for the ClickHouse telemetry store's tests, which
# start a private server of their own (internal/testkit/chtest): Debian 12's
# is 18.16, the SQL is written for it and for current releases.
# chromium is the browser the console's end-to-end tests drive (web/e2e);
# its recommendations would bring avahi-daemon, which talks on the network.
service_pkgs=(docker.io clickhouse-server clickhouse-client chromium)

missing() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"
	done
}
mapfile -t need < <(missing "${pkgs[@]}")
mapfile -t need_services < <(missing "${service_pkgs[@]}")
if [ ${#need[@]} -gt 0 ] || [ ${#need_services[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}"
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ${#need_services[@]} -gt 0 ]; then
	echo "deps: installing ${need_services[*]}"
	# The packages' maintainer scripts start their services through
	# invoke-rc.d, which asks policy-rc.d first: 101 means "do not". This
	# host's own policy, if it has one, is put back afterwards.
	policy=/usr/sbin/policy-rc.d
	[ -e "$policy" ] && mv "$policy" "$policy.deps-saved"
	trap 'rm -f "$policy"; [ -e "$policy.deps-saved" ] && mv "$policy.deps-saved" "$policy"' EXIT
	printf '#!/bin/sh\n# deps.sh: no service starts while docker.io, clickhouse-server and chromium install.\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	apt-get install -y -qq --no-install-recommends "${need_services[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "deps: go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }
# The console (web/) builds with Node.js 20 or later and npm.
command -v npm >/dev/null || { echo "deps: npm is not on PATH (the console needs Node.js 20 or later with npm)" >&2; exit 1; }
