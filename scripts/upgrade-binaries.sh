#!/usr/bin/env bash
# upgrade-binaries.sh: the binaries the node test upgrades to (make
# upgrade-binaries, after make): build/upgrade/cameleer-next, the build
# under test with another version stamp and one component changed (kine,
# with bytes appended: another file, the same program), and
# build/upgrade/cameleer-broken, whose kine exits at once, so that the
# node cannot become healthy on it. Both from build/payload, linked, not
# copied.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/upgrade
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)}
key=$(build/tools/mkbundle -key "${SIGNING_KEY:-build/signing/bundle.key}" pub)
mkdir -p "$out"
for kind in next broken; do
	root=$out/payload-$kind
	rm -rf "$root"
	cp -al build/payload "$root"
	rm "$root/bin/kine"
	case $kind in
	next)
		cp build/payload/bin/kine "$root/bin/kine"
		printf 'cameleer upgrade test\n' >>"$root/bin/kine"
		;;
	broken)
		# A Go program (the payload's SBOM reads each binary's build info).
		src=$(mktemp -d)
		printf 'package main\n\nimport "os"\n\nfunc main() {\n\tos.Stderr.WriteString("kine: broken on purpose\\n")\n\tos.Exit(1)\n}\n' >"$src/main.go"
		(cd "$src" && CGO_ENABLED=0 go build -trimpath -o kine main.go)
		mv "$src/kine" "$root/bin/kine"
		rm -rf "$src"
		;;
	esac
	chmod 0755 "$root/bin/kine"
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/cameleer/cameleer/version.Version=$version-$kind \
		-X github.com/cameleer/cameleer/version.SigningKey=$key" -o "$out/exe-$kind" ./cmd/cameleer
	build/tools/mkpayload -versions embed/versions -root "$root" -exe "$out/exe-$kind" -o "$out/cameleer-$kind" \
		-sbom "$out/$kind.spdx.json" -created "${SOURCE_DATE_EPOCH:-0}" -agent-version "$version"
	rm -rf "$root" "$out/exe-$kind"
done
