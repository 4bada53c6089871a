#!/usr/bin/env bash
# build-manifests.sh OUTDIR: copies the Kubernetes objects that come with a
# pinned part's source into OUTDIR: Traefik's CRDs, from the Traefik module
# at TRAEFIK_VERSION.
set -euo pipefail
out=${1:?usage: build-manifests.sh OUTDIR}
cd "$(dirname "$0")/.."
. embed/versions
# go mod download fetches the module on a cold cache and prints where it is.
dir=$(cd embed/traefik && go mod download -json github.com/traefik/traefik/v3 | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "build-manifests: traefik module not found" >&2; exit 1; }
mkdir -p "$out"
install -m 0644 "$dir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" "$out/traefik-crds.yaml"
