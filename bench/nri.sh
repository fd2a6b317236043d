#!/usr/bin/env bash
# What `tollgate nri` adds to a real container create (containerd 2.4 from ../shared/peers, crictl, one
# small signed image already in containerd's store, a host-network pod): medians of RUNS timed
# `crictl create` runs with NRI on and no plugin (the same-run baseline), then with tollgate's plugin
# registered and the daemon's verdict cached.
#   bench/nri.sh [RUNS]        default 30
#   BENCH_PROFILE=debug        the debug build (CI runs every bench script once this way)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
profile="${BENCH_PROFILE:-release}"
export TOLLGATE_PEERS="${TOLLGATE_PEERS:-$PWD/target/peers}"
[ -x "$TOLLGATE_PEERS/containerd-2.4/containerd" ] || ../shared/peers/install "$TOLLGATE_PEERS" >/dev/null
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p tollgate -p tollgate-testkit --bin tollgate --bin bench-nri
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $profile build"
"target/$profile/bench-nri" "$runs" "$PWD/target/$profile/tollgate"
