#!/usr/bin/env bash
# quickstart.sh: README's step 1 once `make` has built bin/: a control plane
# on this host, this host made its runner with the one command a one-time
# token comes with (curl | sh), and the sample Camel app (examples/hello,
# built here with Maven) deployed to it; then the app's URL.
#
#   scripts/quickstart.sh
#
# Run it again at any time: what is there is kept (the control plane, the
# tenant, the registration), and the app is deployed anew. Knobs:
# CP_ADDR (127.0.0.1:8443), CP_DIR (/var/lib/cameleer-controlplane),
# DATA_DIR (/var/lib/cameleer), TENANT (demo), ENVIRONMENT (dev), APP (hello).
# `bin/cameleer reset` removes the node; stop the control plane by the PID
# in $CP_DIR.pid.
set -euo pipefail
cd "$(dirname "$0")/.."
cp_addr=${CP_ADDR:-127.0.0.1:8443}
cp_dir=${CP_DIR:-/var/lib/cameleer-controlplane}
data_dir=${DATA_DIR:-/var/lib/cameleer}
tenant=${TENANT:-demo}
envname=${ENVIRONMENT:-dev}
app=${APP:-hello}
cp=https://$cp_addr

say() { printf '==> %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (the node needs it)"
for f in bin/cameleer bin/cameleer-controlplane; do
	[ -x "$f" ] || die "no $f: build first (scripts/deps.sh && make)"
done
for tool in curl mvn jq; do
	command -v $tool >/dev/null || die "needs $tool (scripts/deps.sh installs it)"
done

say "Building the sample app with Maven (examples/hello)"
mvn -q -B -f examples/hello/pom.xml package
jar=build/examples/hello/hello.jar

ca=$cp_dir/pki/ca.crt
up() { [ -f "$ca" ] && curl -sf --cacert "$ca" "$cp/healthz" >/dev/null 2>&1; }
if up; then
	say "The control plane answers on $cp"
else
	say "Starting the control plane on $cp (data $cp_dir, log $cp_dir.log)"
	mkdir -p "$(dirname "$cp_dir")"
	nohup bin/cameleer-controlplane serve --data-dir "$cp_dir" --listen "$cp_addr" --url "$cp" \
		--runner-binary "$PWD/bin/cameleer" >>"$cp_dir.log" 2>&1 &
	echo $! >"$cp_dir.pid"
	for _ in $(seq 150); do
		up && break
		kill -0 "$(cat "$cp_dir.pid")" 2>/dev/null || die "the control plane stopped: see $cp_dir.log"
		sleep 0.2
	done
	up || die "the control plane does not answer on $cp: see $cp_dir.log"
fi
admin=$(cat "$cp_dir/admin.token")

# api METHOD PATH [curl args...]: the answer's body; fails on a status >= 400
# except those named in OK (space-separated).
api() {
	local method=$1 path=$2
	shift 2
	local out status
	out=$(curl -sS --cacert "$ca" -H "Authorization: Bearer $admin" -X "$method" -w '\n%{http_code}' "$@" "$cp$path")
	status=${out##*$'\n'}
	out=${out%$'\n'*}
	if [ "$status" -ge 400 ] && [[ " ${OK:-} " != *" $status "* ]]; then
		die "$method $path: $status $out"
	fi
	printf '%s' "$out"
}
field() { jq -r ".$1 // empty"; }

OK=409 api POST /api/v1/tenants -d "{\"name\":\"$tenant\",\"tier\":\"mid\"}" >/dev/null
OK=409 api POST "/api/v1/tenants/$tenant/environments" -d "{\"name\":\"$envname\"}" >/dev/null

if [ -f "$data_dir/controlplane/runner.json" ]; then
	say "This host is registered already; making sure its node runs"
	bin/cameleer install --data-dir "$data_dir"
else
	install=$(api POST "/api/v1/tenants/$tenant/runner-tokens" -d '{}' | field install)
	[ -n "$install" ] || die "the one-time token came without its install command"
	say "Making this host a runner, with the command the one-time token comes with:"
	printf '    %s\n' "$install"
	# This host trusts the control plane's own CA for that first fetch (on
	# another host: put the CA in its trust store, docs/install.md).
	CURL_CA_BUNDLE=$ca sh -c "$install --data-dir $data_dir"
fi
runner=$(jq -r .name "$data_dir/controlplane/runner.json")
runner_id=$(jq -r .runnerId "$data_dir/controlplane/runner.json")
connected() { api GET "/api/v1/tenants/$tenant/runners" | jq -e --arg n "$runner" 'any(.[]; .name == $n and .connected)' >/dev/null; }
for _ in $(seq 120); do
	connected && break
	sleep 0.5
done
connected || die "the runner $runner did not connect: see $data_dir/logs/cameleer.log"

say "Uploading $jar and deploying it as $app to $envname"
sha=$(api POST "/api/v1/tenants/$tenant/apps/$app/artifacts" -F "file=@$jar" | field sha256)
[ -n "$sha" ] || die "the upload named no SHA-256"
id=$(api POST "/api/v1/tenants/$tenant/environments/$envname/deployments" \
	-d "{\"app\":\"$app\",\"artifact\":\"$sha\",\"runner\":\"$runner_id\"}" | field id)
phase=
for _ in $(seq 300); do
	d=$(api GET "/api/v1/tenants/$tenant/environments/$envname/deployments/$id")
	phase=$(printf '%s' "$d" | field phase)
	case $phase in
	running) break ;;
	failed) die "the deployment failed: $(printf '%s' "$d" | field reason)" ;;
	esac
	sleep 1
done
[ "$phase" = running ] || die "the deployment is still $phase after 5 minutes"
url=http://$app.$envname.$tenant.localhost/
for _ in $(seq 60); do
	curl -sf "$url" >/dev/null && break
	sleep 1
done

cat <<EOF

Cameleer runs here. The sample app answers:

    curl $url
    $(curl -sS "$url" || echo "(not yet: try again in a moment)")

The console: $cp/ (its certificate is the control plane's own CA's,
$ca; sign in with the admin token in $cp_dir/admin.token).

Its exchanges, routes and figures, through the API:

    curl --cacert $ca -H "Authorization: Bearer \$(cat $cp_dir/admin.token)" \\
        $cp/api/v1/tenants/$tenant/environments/$envname/apps/$app/exchanges

Next: docs/apps.md (deploy, promote), docs/observability.md, docs/install.md
(more runners). The node: bin/cameleer status; remove it with bin/cameleer reset.
EOF
