#!/usr/bin/env bash
# Benchmarks Chainfire against etcd v3.7.3 on this machine and writes
# bench/chainfire/results.md. `make bench-chainfire` runs it after building
# bin/chainfire (make build) and bin/etcd (make etcd).
#
# With --cluster (`make bench-chainfire-cluster`) it benchmarks 3-member
# clusters instead (puts to the leader and to all members, reads, watch
# fan-out, leader failover) and writes bench/chainfire/results-cluster.md.
#
# Environment:
#   PHOTON_BIN_DIR   where etcd and chainfire are (default <repo>/bin)
#   BENCH_DURATION   measured time per row (default 10s)
#   BENCH_WARMUP     unmeasured load before each row (default 2s)
#   BENCH_ROUNDS     measure every row this many times, interleaved, pooled (default 1)
#   BENCH_OUT        markdown report (default bench/chainfire/results.md, or
#                    bench/chainfire/results-cluster.md with --cluster)
#   BENCH_FLAGS      extra loadgen flags, e.g. "-workloads put,txn-cas -shapes 1/1 -json /tmp/r.json"
#                    (run the loadgen directly for -attach, whose value has spaces)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${PHOTON_BIN_DIR:-$root/bin}
mode=()
default_out=$root/bench/chainfire/results.md
case ${1:-} in
--cluster)
	mode=(-cluster)
	default_out=$root/bench/chainfire/results-cluster.md
	;;
"") ;;
*)
	echo "usage: run.sh [--cluster]" >&2
	exit 2
	;;
esac
out=${BENCH_OUT:-$default_out}

for b in etcd chainfire; do
	if [[ ! -x $bin/$b ]]; then
		echo "run.sh: $bin/$b missing; run 'make build etcd' first" >&2
		exit 1
	fi
done

# Data dirs, logs and the loadgen binary live in one temp dir on the same
# filesystem for both servers; it goes when the run ends.
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-chainfire.XXXXXX")
trap 'rm -rf "$work"' EXIT

(cd "$root" && go build -o "$work/loadgen" ./bench/chainfire/loadgen)

# Others may rebuild bin/ while the benchmark runs (it takes minutes): every
# row must start the same binaries, so run private copies.
mkdir "$work/bin"
cp "$bin/etcd" "$bin/chainfire" "$work/bin/"

# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
"$work/loadgen" "${mode[@]}" -bin-dir "$work/bin" -workdir "$work" -out "$out" ${BENCH_FLAGS:-}
