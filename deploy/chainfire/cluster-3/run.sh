#!/usr/bin/env bash
# Runs the 3-member example on this machine with data under $DATA (default
# ./cluster-3-data), logs in $DATA/*.log. Stop with: pkill -f cluster-3/cf
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${PHOTON_BIN_DIR:-$here/../../../bin}
data=${DATA:-$PWD/cluster-3-data}
mkdir -p "$data"
for i in 1 2 3; do
	"$bin/chainfire" --config "$here/cf$i.toml" --data-dir "$data/cf$i" >"$data/cf$i.log" 2>&1 &
done
echo "started; try: $bin/etcdctl --endpoints 127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379 member list -w table"
