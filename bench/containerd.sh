#!/usr/bin/env bash
# What a verifier adds to a real containerd pull (containerd 2.3 from ../shared/peers, ctr, one
# small signed image in Debian's docker-registry on 127.0.0.1): medians of RUNS timed pulls with no
# verifier, with a no-op verifier (an `exit 0` script, the same-run baseline), with
# tollgate-verifier and a cached daemon verdict, and with the daemon's caches off (cold).
#   bench/containerd.sh [RUNS]      default 30
#   BENCH_PROFILE=debug             the debug build (CI runs every bench script once this way)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
profile="${BENCH_PROFILE:-release}"
export TOLLGATE_PEERS="${TOLLGATE_PEERS:-$PWD/target/peers}"
[ -x "$TOLLGATE_PEERS/containerd-2.3/containerd" ] || ../shared/peers/install "$TOLLGATE_PEERS" >/dev/null
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p tollgate -p tollgate-testkit --bin tollgate --bin tollgate-verifier --bin bench-containerd
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $profile build"
"target/$profile/bench-containerd" "$runs" "$PWD/target/$profile/tollgate" "$PWD/target/$profile/tollgate-verifier"
