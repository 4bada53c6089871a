#!/usr/bin/env bash
# build-kubernetes.sh OUTDIR
#
# Builds the Kubernetes multicall binary OUTDIR/kube from embed/kubernetes and
# links each component's name to it (kube-apiserver -> kube, ...), so `ps`
# shows which component a process is. Versions are stamped the way upstream's
# hack/lib/version.sh does; the build date is the commit time, for
# reproducibility.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../embed/versions"
out=$1
v=${KUBERNETES_VERSION#v}
major=${v%%.*}
minor=${v#*.}
minor=${minor%%.*}
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)
ldflags=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
	ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
done
TAGS=providerless LDFLAGS=$ldflags "$here/gobuild.sh" "$here/../embed/kubernetes" "$out/kube" .
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
	ln -sfn kube "$out/$c"
done
