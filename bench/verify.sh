#!/usr/bin/env bash
# Whole-process timing of `tollgate verify` (cold: a new process, a fresh
# connection, manifest + signature fetched and checked, policy loaded) against
# a docker-registry on 127.0.0.1, with two baselines measured in the same run:
# /bin/true (process start) and bench-fetch (a new process making only the
# registry requests of a cold decision, with tollgate's registry client). Uses hyperfine when installed (apt-get install hyperfine),
# otherwise a plain loop reporting the median.
#   bench/verify.sh [RUNS]   (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-50}"
cargo build -q --release -p tollgate -p tollgate-testkit --bin tollgate --bin bench-fixture --bin bench-fetch
work="$(mktemp -d)"
trap 'exec 3>&-; rm -rf "$work"' EXIT
coproc FIXTURE { target/release/bench-fixture "$work"; }
exec 3>&"${FIXTURE[1]}"
read -r image registry <&"${FIXTURE[0]}"
cmd=(target/release/tollgate verify "$image" --policy "$work/policy.json" --insecure-registry "$registry")
digest=$("${cmd[@]}" -o json | sed -n 's/.*"digest": "\(sha256:[0-9a-f]*\)".*/\1/p' | head -n1)
cmd_digest=("${cmd[@]}" --digest "$digest")
fetch=(target/release/bench-fetch "$registry" "$image" "$digest")
"${fetch[@]}"
"${cmd[@]}" >/dev/null   # must be allowed, or the timing means nothing
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/times.json" \
    '/bin/true' "${fetch[*]}" "${cmd[*]}" "${cmd_digest[*]}"
  # Medians in ms, in the order above, and what tollgate adds to the requests alone.
  grep -o '"median": [0-9.e+-]*' "$work/times.json" | awk '{print $2 * 1000}' | paste -sd' ' |
    awk '{printf "medians: /bin/true %.2f ms, bench-fetch %.2f ms (x%.1f), verify TAG %.2f ms (x%.1f), verify --digest %.2f ms (x%.1f); tollgate adds %.2f ms to the requests\n", $1, $2, $2/$1, $3, $3/$1, $4, $4/$1, $4-$2}'
else
  median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  time_ns() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $((e - s)); }
  base=$(for _ in $(seq "$runs"); do time_ns /bin/true; done | median)
  floor=$(for _ in $(seq "$runs"); do time_ns "${fetch[@]}"; done | median)
  echo "median bench-fetch (registry requests only): $((floor / 1000)) µs"
  tg=$(for _ in $(seq "$runs"); do time_ns "${cmd[@]}"; done | median)
  tgd=$(for _ in $(seq "$runs"); do time_ns "${cmd_digest[@]}"; done | median)
  echo "median /bin/true: $((base / 1000)) µs; tollgate verify TAG: $((tg / 1000)) µs (x$(awk "BEGIN {printf \"%.1f\", $tg / $base}")); with --digest: $((tgd / 1000)) µs (x$(awk "BEGIN {printf \"%.1f\", $tgd / $base}"))"
fi
