#!/bin/sh
# What a host of the multi-node test does when it boots, before it sleeps
# (docker-init is PID 1 and reaps what `cameleer run` leaves).
set -eu
# The container is not --privileged (that asks runc for every capability,
# and root here lacks CAP_SYS_RESOURCE): /sys and the cgroup v1
# hierarchies are made writable as they are in a privileged one. With
# --cgroupns=private they are the host's own subtree: the kubelet's
# kubepods/ goes there.
mount -o remount,rw /sys
for d in /sys/fs/cgroup/*; do
	mountpoint -q "$d" && mount -o remount,bind,rw "$d"
done
# The kubelet's mount propagation.
mount --make-rshared /
# Debian's minbase has no machine-id; the kubelet reads one.
[ -s /etc/machine-id ] || tr -d - </proc/sys/kernel/random/uuid >/etc/machine-id
# Docker's DNS answers on 127.0.0.11, which pods cannot reach and CoreDNS
# takes for a loop. As kind does: it answers on the network's gateway
# address too (in PREROUTING as well, for pods), and resolv.conf names that.
gw=$(ip -4 route show default | awk '{print $3; exit}')
if [ -n "$gw" ] && grep -q '^nameserver 127.0.0.11' /etc/resolv.conf; then
	iptables-save -t nat |
		sed -e "/-d 127.0.0.11/s/-d 127.0.0.11/-d $gw/g" \
			-e 's/-A OUTPUT \(.*\) -j DOCKER_OUTPUT/&\n-A PREROUTING \1 -j DOCKER_OUTPUT/' \
			-e "s/--to-source :53/--to-source $gw:53/g" |
		iptables-restore -T nat
	sysctl -qw net.ipv4.conf.all.route_localnet=1
	sed "s/^nameserver 127.0.0.11/nameserver $gw/" /etc/resolv.conf >/tmp/resolv.conf
	cat /tmp/resolv.conf >/etc/resolv.conf
	rm /tmp/resolv.conf
fi
echo booted >/run/booted
exec sleep infinity
