#!/usr/bin/env bash
# build-manifests.sh OUTDIR: copies the Kubernetes objects that come with a
# pinned part's source into OUTDIR: Traefik's CRDs, from the Traefik module
# at TRAEFIK_VERSION.
set -euo pipefail
out=${1:?usage: build-manifests.sh OUTDIR}
cd "$(dirname "$0")/.."
. embed/versions
dir=$(cd embed/traefik && go list -m -f '{{.Dir}}' github.com/traefik/traefik/v3)
[ -n "$dir" ] || { echo "build-manifests: traefik module not found" >&2; exit 1; }
mkdir -p "$out"
install -m 0644 "$dir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" "$out/traefik-crds.yaml"
