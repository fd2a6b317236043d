#!/usr/bin/env bash
# The admission round trip of `tollgate webhook`: a real kube-apiserver 1.36 and etcd from
# ../shared/peers, a real docker-registry with signed images, the webhook on 127.0.0.1 over TLS.
# p50/p99 of RUNS reviews posted directly (cached and cold verdicts) and of RUNS pod creates through
# the API server with no webhook (the same-run baseline), then through the webhook, cached and cold.
#   bench/webhook.sh [RUNS]    default 30
#   BENCH_PROFILE=debug        the debug build (CI runs every bench script once this way)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
profile="${BENCH_PROFILE:-release}"
export TOLLGATE_PEERS="${TOLLGATE_PEERS:-$PWD/target/peers}"
[ -x "$TOLLGATE_PEERS/tools/kube-apiserver" ] || ../shared/peers/install "$TOLLGATE_PEERS" >/dev/null
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p tollgate -p tollgate-testkit --bin tollgate --bin bench-webhook
echo "$profile build"
"target/$profile/bench-webhook" "$runs" "$PWD/target/$profile/tollgate"
