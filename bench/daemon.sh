#!/usr/bin/env bash
# Node daemon benchmarks, all against 127.0.0.1, with baselines measured in the same run:
#  1. the whole-process containerd verifier call (tollgate-verifier, as installed), daemon warm,
#     verdict cached, against /bin/true; and the full tollgate binary answering the same call;
#  2. the same call with the daemon's caches off (a cold decision through the daemon: registry
#     round trips for the manifest and signature, signature check), and in-process with no daemon;
#  3. daemon throughput and latency with concurrent clients (cached verdicts, one connection per
#     request, as the verifier does), with `bench-load` on the same cores;
#  4. daemon RSS idle and holding 100k cached verdicts.
#   [STATIC=0] bench/daemon.sh [RUNS] [LOAD]   (defaults 200 and 50000; tollgate-verifier is linked
#   statically, as it should ship, unless STATIC=0)
#   BENCH_PROFILE=debug: the debug build, no static verifier (CI runs every bench script once this way)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-200}"
load="${2:-50000}"
profile="${BENCH_PROFILE:-release}"
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p tollgate -p tollgate-testkit --bin tollgate --bin tollgate-verifier --bin bench-fixture --bin bench-load
bin="target/$profile"
tg=$bin/tollgate
tv=$bin/tollgate-verifier
if [ "${STATIC:-1}" = 1 ] && [ "$profile" = release ]; then
  # The verifier as it should ship: statically linked (it never resolves names, so static glibc is safe).
  RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release -p tollgate --bin tollgate-verifier \
    --target x86_64-unknown-linux-gnu
  tv=target/x86_64-unknown-linux-gnu/release/tollgate-verifier
fi
work="$(mktemp -d)"
pids=()
cleanup() { exec 3>&- || true; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
coproc FIXTURE { "$bin/bench-fixture" "$work"; }
exec 3>&"${FIXTURE[1]}"
# The fixture also prints its in-memory registry, which this script does not use.
read -r image registry _memory <&"${FIXTURE[0]}"
digest=$($tg verify "$image" --policy "$work/policy.json" --insecure-registry "$registry" -o json |
  sed -n 's/.*"digest": "\(sha256:[0-9a-f]*\)".*/\1/p' | head -n1)

config() { # NAME EXTRA
  cat >"$work/$1.yaml" <<YAML
policy: $work/policy.json
socket: $work/$1.sock
insecureRegistries: ["$registry"]
auditLog: {path: $work/$1-audit.log, maxBytes: 1073741824}
breakGlassFile: $work/break-glass
lastGoodPolicy: $work/$1-last-good.json
fallbackBinary: $PWD/$tg
$2
YAML
}
config warm "cache: {allowTtlSeconds: 3600, denyTtlSeconds: 3600}"
config cold "cache: {allowTtlSeconds: 0, denyTtlSeconds: 0, signatureTtlSeconds: 0}"
config none "socket: $work/nobody.sock"
sed -i "0,/^socket:.*/{/^socket:.*/d}" "$work/none.yaml"   # keep the second socket: line only
start() { # NAME
  TOLLGATE_LOG=warn $tg serve --config "$work/$1.yaml" 2>"$work/$1.log" &
  pids+=($!)
  for _ in $(seq 200); do [ -S "$work/$1.sock" ] && return; sleep 0.05; done
  echo "daemon $1 did not start:" >&2; cat "$work/$1.log" >&2; exit 1
}
start warm
start cold
warm_pid=${pids[0]}
printf '{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"%s","size":1000}\n' "$digest" >"$work/desc.json"
args=(-name "$image" -digest "$digest" -stdin-media-type application/vnd.oci.descriptor.v1+json)
for c in warm cold none; do   # each must allow, or the timing means nothing
  out=$(TOLLGATE_CONFIG="$work/$c.yaml" $tv "${args[@]}" <"$work/desc.json")
  case "$out" in "tollgate: allowed"*) ;; *) echo "$c: not allowed: $out" >&2; exit 1 ;; esac
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
echo "daemon RSS idle: $(rss "$warm_pid") KiB"
# hyperfine 1.15 has no --input: stdin is empty, which the verifier tolerates (the descriptor is
# informational). TOLLGATE_CONFIG goes through hyperfine's environment, not an `env` wrapper,
# which alone would cost as much as /bin/true.
timing() { # NAME CONFIG BINARY
  echo "== $1 =="
  TOLLGATE_CONFIG="$work/$2.yaml" hyperfine -N --warmup 20 --runs "$runs" -n /bin/true /bin/true \
    -n "$1" "$3 ${args[*]}" 2>&1 | grep -E "Time|faster" || true
}
timing "1. tollgate-verifier, warm daemon, cached verdict" warm "$tv"
timing "1b. full tollgate binary as the verifier, cached verdict" warm "$tg"
timing "2. tollgate-verifier, daemon with caches off (cold decision against the registry)" cold "$tv"
timing "2b. tollgate-verifier, daemon down (hands over to tollgate, in-process)" none "$tv"
echo "== 3. throughput, cached verdicts =="
"$bin/bench-load" "$work/warm.sock" 8 2000 1000 >/dev/null   # fill the cache
for clients in 1 8 32; do "$bin/bench-load" "$work/warm.sock" "$clients" "$load" 1000; done
echo "== 4. RSS with 100k cached verdicts =="
"$bin/bench-load" "$work/warm.sock" 8 $((load * 2)) $((load * 2)) >/dev/null
echo "cached: $(sed -n 's/.*"cachedVerdicts":\([0-9]*\).*/\1/p' <<<"$(curl -s --unix-socket "$work/warm.sock" http://t/healthz 2>/dev/null || true)") verdicts; daemon RSS: $(rss "$warm_pid") KiB"
