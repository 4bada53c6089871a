#!/usr/bin/env bash
# build-pause.sh OUTDIR: compiles Kubernetes' pause container binary from the
# k8s.io/kubernetes module source (build/pause/linux/pause.c) with the CFLAGS of
# upstream's build/pause/Makefile, then strips it as upstream does.
# -ffile-prefix-map keeps the module cache path out of the output.
set -euo pipefail
out=${1:?usage: build-pause.sh OUTDIR}
cd "$(dirname "$0")/.."
. embed/versions
# Outside any module, so no go.mod/go.sum is touched.
dir=$(cd / && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
test -f "$dir/build/pause/linux/pause.c" || { echo "build-pause.sh: no pause.c in $dir" >&2; exit 1; }
mkdir -p "$out"
gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-0" -ffile-prefix-map="$dir=." \
	-o "$out/pause.tmp" "$dir/build/pause/linux/pause.c"
strip "$out/pause.tmp"
mv "$out/pause.tmp" "$out/pause"
