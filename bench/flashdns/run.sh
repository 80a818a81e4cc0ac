#!/usr/bin/env bash
# Benchmarks FlashDNS (bin/flashdns on bin/chainfire, zones imported through
# its API) against NSD and Knot on this machine with dnsperf and writes
# bench/flashdns/results.md. `make bench-flashdns` runs it. Needs nsd, knot
# and dnsperf installed (Debian packages nsd, knot, dnsperf). A default run
# takes about a minute and a half, plus the build.
#
# Environment:
#   BENCH_DURATION   measured throughput window per server and round (default 10s)
#   BENCH_WARMUP     unmeasured load before each server's windows (default 2s)
#   BENCH_ROUNDS     rounds, interleaved and pooled (default 1; 3 on a busy machine)
#   BENCH_OUT        markdown report (default bench/flashdns/results.md)
#   BENCH_JSON       also write the raw results as JSON to this file
#   BENCH_FLAGS      extra flags, e.g. "-servers nsd,flashdns -clients 16"
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${BENCH_OUT:-$root/bench/flashdns/results.md}
json=()
if [[ -n ${BENCH_JSON:-} ]]; then
	json=(-json "$BENCH_JSON")
fi

# Binaries, zones and server state live in one temp dir that goes when the
# run ends.
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-flashdns.XXXXXX")
trap 'rm -rf "$work"' EXIT

# FlashDNS and Chainfire are built from this tree into the temp dir, not
# taken from bin/: others may rebuild bin/ while the benchmark runs, and
# every window must measure the same build.
(cd "$root" && go build -o "$work/" ./cmd/flashdns ./cmd/chainfire && go build -o "$work/flashdns-bench" ./bench/flashdns)

cd "$root"
# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
"$work/flashdns-bench" -bin-dir "$work" -rule-zones "$root/test/dnsdiff" -workdir "$work" -out "$out" "${json[@]}" ${BENCH_FLAGS:-}
