#!/usr/bin/env bash
# Whole-process timing of `tollgate verify` (cold: a new process, a fresh
# connection, manifest + signature fetched and checked, policy loaded) against
# two registries on 127.0.0.1: Debian's docker-registry, and an in-memory
# registry serving the same objects in microseconds (bench-fixture starts both).
# Baselines measured in the same hyperfine run: /bin/true (process start) and
# bench-fetch (a new process making only the registry requests of a cold
# decision, with tollgate's registry client). Uses hyperfine when installed
# (apt-get install hyperfine; HYPERFINE=0 to skip it), otherwise a plain loop
# reporting medians.
#   bench/verify.sh [RUNS]   (default 50)
#   BENCH_PROFILE=debug: the debug build (CI runs every bench script once this way)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-50}"
profile="${BENCH_PROFILE:-release}"
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p tollgate -p tollgate-testkit --bin tollgate --bin bench-fixture --bin bench-fetch
work="$(mktemp -d)"
trap 'exec 3>&-; rm -rf "$work"' EXIT
coproc FIXTURE { target/$profile/bench-fixture "$work"; }
exec 3>&"${FIXTURE[1]}"
read -r image registry memory <&"${FIXTURE[0]}"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# bench LABEL REGISTRY IMAGE POLICY
bench() {
  local label="$1" reg="$2" img="$3" policy="$4"
  local cmd=(target/$profile/tollgate verify "$img" --policy "$policy" --insecure-registry "$reg")
  local digest
  digest=$("${cmd[@]}" -o json | sed -n 's/.*"digest": "\(sha256:[0-9a-f]*\)".*/\1/p' | head -n1)
  local cmd_digest=("${cmd[@]}" --digest "$digest")
  local fetch=(target/$profile/bench-fetch "$reg" "$img" "$digest")
  "${fetch[@]}"
  "${cmd_digest[@]}" >/dev/null # must be allowed, or the timing means nothing
  if [ "${HYPERFINE:-1}" = 1 ] && command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/$label.json" \
      '/bin/true' "${fetch[*]}" "${cmd[*]}" "${cmd_digest[*]}" >&2
    # Medians in ms, in the order above.
    grep -o '"median": [0-9.e+-]*' "$work/$label.json" | awk '{print $2 * 1000}' | paste -sd' '
  else
    median() { sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)] / 1e6}'; }
    time_ns() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $((e - s)); }
    local m=()
    for c in "/bin/true" "${fetch[*]}" "${cmd[*]}" "${cmd_digest[*]}"; do
      read -ra argv <<<"$c"
      m+=("$(for _ in $(seq "$runs"); do time_ns "${argv[@]}"; done | median)")
    done
    echo "${m[*]}"
  fi |
    awk -v label="$label" '{printf "%s medians: /bin/true %.2f ms, bench-fetch %.2f ms (x%.1f), verify TAG %.2f ms (x%.1f), verify --digest %.2f ms (x%.1f); tollgate adds %.2f ms to the requests\n", label, $1, $2, $2/$1, $3, $3/$1, $4, $4/$1, $4-$2}'
}

bench docker-registry "$registry" "$image" "$work/policy.json"
bench in-memory "$memory" "$memory/bench/app:v1" "$work/policy-memory.json"
