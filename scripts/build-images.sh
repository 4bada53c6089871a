#!/usr/bin/env bash
# build-images.sh BUILD_DIR
#
# Builds the engine's system images as reproducible OCI archives in
# BUILD_DIR/payload/images/, from binaries built earlier into BUILD_DIR/imgbin
# (pause, coredns, traefik, local-path-provisioner) and from this host's
# Debian packages (busybox-static, the JDK for the Java runtime image). Each
# image carries its version in the org.opencontainers.image.version label,
# which the payload packer reads.
set -euo pipefail
build=$(realpath -m "$1")
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../embed/versions"
mkimage="$build/tools/mkimage"
out="$build/payload/images"
rootfs="$build/rootfs"
mkdir -p "$out"
registry=cameleer.local

# image NAME VERSION [mkimage flags...]: rootfs is $rootfs/NAME.
image() {
	local name=$1 version=$2
	shift 2
	"$mkimage" -rootfs "$rootfs/$name" -ref "$registry/$name:${version//+/_}" -o "$out/$name.tar" \
		-label "org.opencontainers.image.version=$version" -label "org.opencontainers.image.title=$name" "$@"
}

# fresh NAME: an empty rootfs with the directories every image has.
fresh() {
	rm -rf "$rootfs/$1"
	mkdir -p "$rootfs/$1"/{etc,tmp}
	chmod 1777 "$rootfs/$1/tmp"
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\ncameleer:x:10001:10001:cameleer:/home/cameleer:/sbin/nologin\n' >"$rootfs/$1/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\ncameleer:x:10001:\n' >"$rootfs/$1/etc/group"
}

fresh pause
install -m 0755 "$build/imgbin/pause" "$rootfs/pause/pause"
image pause "$PAUSE_VERSION" -entrypoint /pause -user 65535:65535

fresh coredns
install -m 0755 "$build/imgbin/coredns" "$rootfs/coredns/coredns"
image coredns "$COREDNS_VERSION" -entrypoint /coredns -port 53/udp -port 53/tcp -port 9153/tcp

fresh traefik
install -D -m 0755 "$build/imgbin/traefik" "$rootfs/traefik/usr/local/bin/traefik"
image traefik "$TRAEFIK_VERSION" -entrypoint /usr/local/bin/traefik -port 80/tcp -port 443/tcp

fresh local-path-provisioner
install -D -m 0755 "$build/imgbin/local-path-provisioner" "$rootfs/local-path-provisioner/usr/bin/local-path-provisioner"
image local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" -entrypoint /usr/bin/local-path-provisioner

# busybox: the helper image local-path-provisioner runs to create and delete
# volume directories, with a link for every applet.
fresh busybox
install -D -m 0755 /bin/busybox "$rootfs/busybox/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] || ln -s busybox "$rootfs/busybox/bin/$applet"
done
busybox_version=$(dpkg-query -W -f='${Version}' busybox-static)
busybox_version=${busybox_version#*:}
image busybox "$busybox_version" -env PATH=/bin -cmd sh

# jre: the base of every Camel app image: a jlink runtime from this host's
# JDK in /opt/java plus the shared libraries it needs.
java_home=$(dirname "$(dirname "$(readlink -f "$(command -v jlink)")")")
java_version=$(. "$java_home/release" && echo "$JAVA_VERSION")
fresh jre
jlink --add-modules java.base,java.compiler,java.datatransfer,java.desktop,java.instrument,java.logging,java.management,java.management.rmi,java.naming,java.net.http,java.prefs,java.rmi,java.scripting,java.security.jgss,java.security.sasl,java.sql,java.sql.rowset,java.transaction.xa,java.xml,java.xml.crypto,jdk.attach,jdk.crypto.ec,jdk.httpserver,jdk.jfr,jdk.management,jdk.management.agent,jdk.naming.dns,jdk.net,jdk.unsupported,jdk.zipfs \
	--strip-debug --no-header-files --no-man-pages --output "$rootfs/jre/opt/java" >/dev/null
# Headless servers never load the X11, sound and splash-screen libraries, and
# their dependencies would triple the image.
rm -f "$rootfs/jre/opt/java/lib/"{libawt_xawt,libjawt,libsplashscreen,libjsound,libatk-wrapper}.so
libs=$(find "$rootfs/jre/opt/java" -type f \( -name '*.so' -o -path '*/bin/*' \) -exec ldd {} + 2>/dev/null |
	awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | grep -v "^$rootfs" | sort -u)
# glibc loads libgcc_s at run time (thread cancellation), so ldd cannot see it.
libs="$libs $(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/ && !found {print $NF; found = 1}')"
for lib in $libs; do
	install -D -m 0755 "$(readlink -f "$lib")" "$rootfs/jre$lib"
done
mkdir -p "$rootfs/jre/app"
# The file tree's modes must not depend on this host's umask.
chmod -R go-w "$rootfs/jre"
image jre "$java_version" -env JAVA_HOME=/opt/java -env PATH=/opt/java/bin:/usr/bin:/bin -user 10001:10001 -workdir /app \
	-cmd java -cmd -version
