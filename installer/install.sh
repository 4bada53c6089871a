#!/bin/sh
# install.sh: makes this host a Cameleer runner.
#
# From a control plane, with the one command its one-time token comes with:
#
#   curl -sfL https://CP/install.sh | sh -s - --token OTT
#
# Into a cluster, as a worker, with a join token of its controller's
# (`cameleer token create`): cameleer is downloaded from that controller.
#
#   curl -sfL https://CP/install.sh | sh -s - --join TOKEN
#
# From the signed air-gapped bundle (make bundle), or a binary already on
# the host:
#
#   sh install.sh --bundle FILE [--signing-key KEY] [--token OTT] [install flags...]
#   sh install.sh [--binary PATH] [--token OTT] [install flags...]
#
# Flags of its own:
#   --token OTT     register with the control plane the token names (its
#                   URL, or --url); without --binary, cameleer is
#                   downloaded from that control plane
#   --join TOKEN    join the cluster the token names, as `cameleer join`;
#                   without --binary, cameleer is downloaded from its
#                   controller
#   --url URL       the control plane, for a token that names none
#   --name NAME     the runner's name (default: the control plane's choice)
#   --bundle FILE   install the cameleer of this bundle, once its signature
#                   (by the key below) and every checksum hold
#   --signing-key KEY
#                   the key bundles are checked against, as a cameleer you
#                   trust prints it (`cameleer version`); default: the key
#                   this script was made with, below
#   --binary PATH   install this cameleer instead of downloading one
#                   (default without --token: ./cameleer beside this script)
#   --bin-dir DIR   where cameleer goes (default /usr/local/bin)
# Every other flag goes to `cameleer install` or `cameleer join` (and
# --data-dir to the redeem too). Running the same command again is harmless: a binary already in
# place is not fetched again, a token already redeemed here is not redeemed
# again, and `cameleer install` converges.
#
# Trust: the control plane's CA certificate is public; it is fetched
# without verification and then checked against the SHA-256 the token
# carries, before anything is trusted with it (as kubeadm's discovery
# does). The binary is then fetched over TLS verified against that CA
# alone, and checked against the SHA-256 the control plane publishes.
# HTTPS_PROXY and NO_PROXY are honoured by curl.
set -eu

# The key bundles are checked against: written in by `make bundle` and by
# the control plane that serves this script; --signing-key overrides it.
signing_key=

fail() {
	echo "install.sh: $*" >&2
	exit 1
}

token= join= url= name= binary= bundle= bindir=/usr/local/bin datadir= unpacked=/nonexistent
n=$#
while [ "$n" -gt 0 ]; do
	arg=$1
	shift
	n=$((n - 1))
	case $arg in
	--token | --join | --url | --name | --binary | --bundle | --signing-key | --bin-dir)
		[ "$n" -gt 0 ] || fail "$arg needs a value"
		val=$1
		shift
		n=$((n - 1))
		case $arg in
		--token) token=$val ;;
		--join) join=$val ;;
		--url) url=$val ;;
		--name) name=$val ;;
		--binary) binary=$val ;;
		--bundle) bundle=$val ;;
		--signing-key) signing_key=$val ;;
		--bin-dir) bindir=$val ;;
		esac
		;;
	--data-dir)
		[ "$n" -gt 0 ] || fail "--data-dir needs a value"
		datadir=$1
		set -- "$@" "$arg" "$1"
		shift
		n=$((n - 1))
		;;
	*) set -- "$@" "$arg" ;;
	esac
done

[ "$(id -u)" = 0 ] || fail "run as root"
[ "$(uname -s)" = Linux ] || fail "a runner needs Linux, this is $(uname -s)"
case $(uname -m) in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) fail "no runner for $(uname -m) hosts (amd64 and arm64 only)" ;;
esac
for tool in sha256sum sed; do
	command -v "$tool" >/dev/null || fail "needs $tool"
done

if [ -n "$token" ]; then
	IFS=. read -r prefix cahash secret tokenurl <<EOF
$token
EOF
	[ "$prefix" = cmlr1 ] && [ -n "$secret" ] && [ "${#cahash}" = 64 ] || fail "not a Cameleer one-time token"
	if [ -z "$url" ] && [ -n "$tokenurl" ]; then
		command -v base64 >/dev/null || fail "needs base64 to read the token's URL (or pass --url)"
		# base64url without padding, as the token carries it.
		while [ $((${#tokenurl} % 4)) != 0 ]; do tokenurl=$tokenurl=; done
		url=$(printf '%s' "$tokenurl" | tr '_-' '/+' | base64 -d) || fail "the token's URL cannot be read"
	fi
	[ -n "$url" ] || fail "the token names no control plane: pass --url https://HOST:PORT"
	url=${url%/}
	case $url in https://*) ;; *) fail "the control plane $url is not https://HOST[:PORT]" ;; esac
fi

if [ -n "$join" ]; then
	[ -z "$token" ] || fail "--token and --join go apart: a worker's apps are its controller's"
	IFS=. read -r prefix role cahash id secret server <<EOF
$join
EOF
	[ "$prefix" = cmlj1 ] && [ -n "$secret" ] && [ -n "$server" ] && [ "${#cahash}" = 64 ] || fail "not a Cameleer join token"
	command -v base64 >/dev/null || fail "needs base64 to read the join token"
	while [ $((${#server} % 4)) != 0 ]; do server=$server=; done
	server=$(printf '%s' "$server" | tr '_-' '/+' | base64 -d) || fail "the join token's controller cannot be read"
	url=https://$server
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "$bundle" ]; then
	[ -z "$binary" ] || fail "--bundle and --binary go apart"
	for tool in tar openssl; do
		command -v "$tool" >/dev/null || fail "needs $tool to check the bundle"
	done
	[ -n "$signing_key" ] || fail "no key to check the bundle with: pass --signing-key KEY, as a cameleer you trust prints it"
	[ -f "$bundle" ] || fail "no bundle at $bundle"
	mkdir -p "$bindir"
	# Beside the binary's target: room for it, and the same file system.
	unpacked=$(mktemp -d "$bindir/.cameleer-bundle.XXXXXX")
	trap 'rm -rf "$tmp" "$unpacked"' EXIT
	tar -xf "$bundle" -C "$unpacked" 2>/dev/null || fail "bundle $bundle is not a whole tar: nothing installed"
	dir=
	for d in "$unpacked"/*/; do
		[ -z "$dir" ] || fail "bundle $bundle holds more than one directory: nothing installed"
		dir=${d%/}
	done
	[ -n "$dir" ] && [ -f "$dir/SHA256SUMS" ] && [ -f "$dir/SHA256SUMS.sig" ] || fail "bundle $bundle has no SHA256SUMS and signature: nothing installed"
	printf -- '-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n' "$signing_key" >"$tmp/signing.pem"
	openssl pkeyutl -verify -pubin -inkey "$tmp/signing.pem" -rawin -in "$dir/SHA256SUMS" -sigfile "$dir/SHA256SUMS.sig" >/dev/null 2>&1 ||
		fail "bundle $bundle: SHA256SUMS does not match its signature (signed by another key, or changed): nothing installed"
	grep -q '  cameleer$' "$dir/SHA256SUMS" || fail "bundle $bundle signs no cameleer: nothing installed"
	(cd "$dir" && sha256sum --quiet -c SHA256SUMS) >/dev/null 2>&1 ||
		fail "bundle $bundle: a file does not match its signed SHA-256: nothing installed"
	echo "==> The bundle's signature and checksums hold"
	binary=$dir/cameleer
fi

# cameleer.json and the binary are fetched pinned to the token's CA; from
# a controller, never through a proxy (nodes reach each other directly).
[ -z "$join" ] || export NO_PROXY='*' no_proxy='*'
if [ -n "$token$join" ] && [ -z "$binary" ]; then
	command -v curl >/dev/null || fail "needs curl to download cameleer (or pass --binary PATH)"
	command -v base64 >/dev/null || fail "needs base64 to check the control plane's CA"
	# Unverified on purpose: the hash below is what trusts it.
	curl -sSfL --insecure "$url/ca.crt" -o "$tmp/ca.crt" || fail "fetch the CA from $url/ca.crt"
	got=$(sed -e '/-----BEGIN/d' -e '/-----END/d' "$tmp/ca.crt" | base64 -d | sha256sum | cut -d' ' -f1)
	[ "$got" = "$cahash" ] || fail "the server at $url shows CA sha256:$got, the token pins sha256:$cahash: refusing it"
	curl -sSfL --cacert "$tmp/ca.crt" "$url/downloads/cameleer.json" -o "$tmp/cameleer.json" ||
		fail "ask $url which cameleer it serves"
	want=$(sed -n 's/.*"sha256":"\([0-9a-f]\{64\}\)".*/\1/p' "$tmp/cameleer.json")
	version=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' "$tmp/cameleer.json")
	served=$(sed -n 's/.*"arch":"\([a-z0-9]*\)".*/\1/p' "$tmp/cameleer.json")
	[ -n "$want" ] || fail "$url published no SHA-256 for its cameleer"
	[ "$served" = "$arch" ] || fail "$url serves cameleer for $served hosts, this one is $arch"
	mkdir -p "$bindir"
	if [ -f "$bindir/cameleer" ] && [ "$(sha256sum <"$bindir/cameleer" | cut -d' ' -f1)" = "$want" ]; then
		echo "==> cameleer $version is in $bindir already"
		binary=$bindir/cameleer
	else
		echo "==> Downloading cameleer $version from $url"
		# Beside its target (a file system with room for it), renamed below.
		binary=$bindir/.cameleer.download
		trap 'rm -rf "$tmp" "$bindir/.cameleer.download"' EXIT
		curl -sSfL --cacert "$tmp/ca.crt" "$url/downloads/cameleer" -o "$binary" || fail "download cameleer from $url"
		got=$(sha256sum <"$binary" | cut -d' ' -f1)
		[ "$got" = "$want" ] || fail "the downloaded cameleer has SHA-256 $got, $url published $want: not installed"
		chmod 0755 "$binary"
	fi
fi
if [ -z "$binary" ]; then
	binary=$(cd "$(dirname "$0")" && pwd)/cameleer
fi

[ -f "$binary" ] || fail "no cameleer binary at $binary (pass --binary PATH, or --token OTT or --join TOKEN to download one)"
"$binary" version >/dev/null 2>&1 || fail "$binary does not run on this host"
"$binary" version | grep -q '^engine payload' || fail "$binary carries no engine (build it with make)"
# Put in place by a rename: a running cameleer keeps its inode.
case $binary in
"$bindir/cameleer") ;;
"$bindir/.cameleer.download" | "$unpacked"/*) mv -f "$binary" "$bindir/cameleer" ;;
*)
	mkdir -p "$bindir"
	cp "$binary" "$bindir/.cameleer.new"
	chmod 0755 "$bindir/.cameleer.new"
	mv -f "$bindir/.cameleer.new" "$bindir/cameleer"
	;;
esac

if [ -n "$token" ]; then
	echo "==> Registering with $url"
	"$bindir/cameleer" token redeem "$token" --control-plane "$url" ${name:+--name "$name"} ${datadir:+--data-dir "$datadir"}
fi
if [ -n "$join" ]; then
	exec "$bindir/cameleer" join "$join" "$@"
fi
exec "$bindir/cameleer" install "$@"
