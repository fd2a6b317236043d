#!/usr/bin/env bash
# Whole-process timing of `tollgate verify` (cold: a new process, a fresh
# connection, manifest + signature fetched and checked, policy loaded) against
# a docker-registry on 127.0.0.1, with /bin/true as the baseline measured in
# the same run. Uses hyperfine when installed (apt-get install hyperfine),
# otherwise a plain loop reporting the median.
#   bench/verify.sh [RUNS]   (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-50}"
cargo build -q --release -p tollgate -p tollgate-testkit --bin tollgate --bin bench-fixture
work="$(mktemp -d)"
trap 'exec 3>&-; rm -rf "$work"' EXIT
coproc FIXTURE { target/release/bench-fixture "$work"; }
exec 3>&"${FIXTURE[1]}"
read -r image registry <&"${FIXTURE[0]}"
cmd=(target/release/tollgate verify "$image" --policy "$work/policy.json" --insecure-registry "$registry")
digest=$("${cmd[@]}" -o json | sed -n 's/.*"digest": "\(sha256:[0-9a-f]*\)".*/\1/p' | head -n1)
cmd_digest=("${cmd[@]}" --digest "$digest")
"${cmd[@]}" >/dev/null   # must be allowed, or the timing means nothing
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 5 --runs "$runs" '/bin/true' "${cmd[*]}" "${cmd_digest[*]}"
else
  median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  time_ns() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $((e - s)); }
  base=$(for _ in $(seq "$runs"); do time_ns /bin/true; done | median)
  tg=$(for _ in $(seq "$runs"); do time_ns "${cmd[@]}"; done | median)
  tgd=$(for _ in $(seq "$runs"); do time_ns "${cmd_digest[@]}"; done | median)
  echo "median /bin/true: $((base / 1000)) µs; tollgate verify TAG: $((tg / 1000)) µs (x$(awk "BEGIN {printf \"%.1f\", $tg / $base}")); with --digest: $((tgd / 1000)) µs (x$(awk "BEGIN {printf \"%.1f\", $tgd / $base}"))"
fi
