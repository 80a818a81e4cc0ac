#!/usr/bin/env bash
# ensure-tools.sh installs what a fresh machine lacks to build and test
# PhotonCloud, and is safe to run repeatedly (make test and make dev call it).
# Go itself is expected at /usr/local/go; a newer toolchain named in go.mod
# is fetched by Go from the module proxy (GOTOOLCHAIN=auto).
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

if ! command -v go >/dev/null 2>&1; then
	echo "ensure-tools: Go not found; install it to /usr/local/go (https://go.dev/dl/)" >&2
	exit 1
fi
export PATH="$(go env GOPATH)/bin:$PATH"

# The race detector (go test -race) needs cgo, so a C toolchain.
missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v git >/dev/null 2>&1 || missing+=(git)
# FlashDNS is tested against NSD (differential test, secondary over
# AXFR/IXFR) with dig, and benchmarked with dnsperf against NSD and Knot.
command -v nsd >/dev/null 2>&1 || [[ -x /usr/sbin/nsd ]] || missing+=(nsd)
command -v dig >/dev/null 2>&1 || missing+=(dnsutils)
command -v dnsperf >/dev/null 2>&1 || missing+=(dnsperf)
command -v knotd >/dev/null 2>&1 || [[ -x /usr/sbin/knotd ]] || missing+=(knot)
command -v kdig >/dev/null 2>&1 || missing+=(knot-dnsutils)
if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "ensure-tools: installing ${missing[*]}" >&2
		apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	else
		echo "ensure-tools: missing ${missing[*]}; install them (needs root and apt-get here)" >&2
		exit 1
	fi
fi

if [[ "$(go env CGO_ENABLED)" != 1 ]]; then
	echo "ensure-tools: CGO_ENABLED=0; go test -race needs cgo" >&2
	exit 1
fi

# Fetch every module's dependencies up front so a slow proxy fails here,
# with a clear message, rather than in the middle of the tests. The code
# generators (tools/buf, tools/protoc-gen) are left out: generated code is
# committed, so only `make generate` needs them.
while IFS= read -r mod; do
	(cd "$(dirname "$mod")" && go mod download) || {
		echo "ensure-tools: go mod download failed in $(dirname "$mod")" >&2
		exit 1
	}
done < <(find . -name go.mod -not -path './.git/*' -not -path './bin/*' -not -path './tools/buf/*' -not -path './tools/protoc-gen/*')

echo "ensure-tools: $(go version), gcc $(gcc -dumpversion): ok" >&2
