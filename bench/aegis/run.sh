#!/usr/bin/env bash
# Benchmarks Aegis on this machine against the performance targets of
# issue 4 and writes bench/aegis/results.md: in-process decision latency
# (1k/100k/1M bindings), gRPC Authorize throughput and latency, and token
# issuance at /oauth2/token. `make bench-aegis` runs it. A full run takes
# about three and a half minutes.
#
# Environment:
#   BENCH_DURATION          measured time per server row (default 10s)
#   BENCH_WARMUP            unmeasured load before each server row (default 2s)
#   BENCH_INPROC_DURATION   measured time per in-process size (default 5s)
#   BENCH_OUT               markdown report (default bench/aegis/results.md)
#   BENCH_JSON              also write the raw results as JSON to this file
#   BENCH_FLAGS             extra flags, e.g. "-parts authz -shapes 64/8 -rates 15000,20000"
#                           (run the binary directly for -attach, whose value has spaces)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${BENCH_OUT:-$root/bench/aegis/results.md}
json=()
if [[ -n ${BENCH_JSON:-} ]]; then
	json=(-json "$BENCH_JSON")
fi

# Binaries, data dirs and logs live in one temp dir that goes when the run
# ends.
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-aegis.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The servers under test are built from this tree into the temp dir, not
# taken from bin/: others may rebuild bin/ while the benchmark runs, and
# every row must measure the same build.
mkdir "$work/bin"
(cd "$root" && go build -o "$work/bin/" ./cmd/aegis ./cmd/chainfire && go build -o "$work/aegis-bench" ./bench/aegis)

# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
"$work/aegis-bench" -bin-dir "$work/bin" -workdir "$work" -out "$out" "${json[@]}" ${BENCH_FLAGS:-}
