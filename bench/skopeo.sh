#!/usr/bin/env bash
# Whole-process, cold decisions: `tollgate verify` side by side with upstream
# skopeo 1.20 (containers/image, from ../shared/peers), the reference
# implementation of containers-policy.json, under the same policy against the
# same Debian docker-registry on 127.0.0.1 (bench-skopeo-fixture starts it).
# skopeo decides inside `skopeo copy docker://… dir:…`, which copies the image
# when it is allowed and stops after the decision when it is not.
# Cases: allow with 1 signature, deny unsigned, deny wrong key, keyless allow,
# allow/deny with 8 and 32 signatures (the valid one last). Reports medians,
# the tollgate/skopeo ratio, and each case against tollgate's 1-signature allow.
# Baseline measured in the same run: /bin/true.
#   bench/skopeo.sh [RUNS]     default 30; hyperfine when installed (HYPERFINE=0 to skip)
#   BENCH_PROFILE=debug        use the debug build (CI runs every bench script once this way)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
profile="${BENCH_PROFILE:-release}"
peers="${TOLLGATE_PEERS:-$PWD/target/peers}"
if [ ! -x "$peers/tools/skopeo" ]; then
  ../shared/peers/install "$peers" >/dev/null
fi
skopeo="$peers/tools/skopeo"
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p tollgate -p tollgate-testkit --bin tollgate --bin bench-skopeo-fixture
bin="target/$profile"
work="$(mktemp -d)"
trap 'exec 3>&-; rm -rf "$work"' EXIT
coproc FIXTURE { "$bin/bench-skopeo-fixture" "$work"; }
exec 3>&"${FIXTURE[1]}"
read -r registry <&"${FIXTURE[0]}"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $("$skopeo" --version)"
export HOME="$work" CONTAINERS_REGISTRIES_CONF="$work/registries.conf" TMPDIR="$work"

# median_ms CMD...: the median wall time of RUNS runs (exit status ignored).
median_ms() {
  if [ "${HYPERFINE:-1}" = 1 ] && command -v hyperfine >/dev/null; then
    hyperfine -N -i --warmup 3 --runs "$runs" --export-json "$work/h.json" "$*" >/dev/null 2>&1
    grep -o '"median": [0-9.e+-]*' "$work/h.json" | awk '{printf "%.2f", $2 * 1000}'
  else
    for _ in $(seq "$runs"); do
      local s e
      s=$(date +%s%N)
      "$@" >/dev/null 2>&1 || true
      e=$(date +%s%N)
      echo $((e - s))
    done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)] / 1e6}'
  fi
}

# expect VERDICT CMD...: the command's verdict must be the expected one, or the timing means nothing.
expect() {
  local want="$1"; shift
  if "$@" >/dev/null 2>&1; then got=allow; else got=deny; fi
  [ "$got" = "$want" ] || { echo "bench/skopeo.sh: expected $want from: $*" >&2; exit 1; }
}

true_ms=$(median_ms /bin/true)
printf '%-9s %-6s %10s %10s %8s %12s\n' case want tollgate skopeo ratio "vs one"
one_ms=""
for c in one:allow unsigned:deny wrongkey:deny keyless:allow allow8:allow deny8:deny allow32:allow deny32:deny; do
  name="${c%%:*}" want="${c##*:}"
  policy="$work/policy.json"; [ "$name" = keyless ] && policy="$work/policy-keyless.json"
  image="$registry/bench/$name:v1"
  ours=("$bin/tollgate" verify "$image" --policy "$policy" --insecure-registry "$registry")
  theirs=("$skopeo" --policy "$policy" --registries.d "$work/registries.d" copy --src-tls-verify=false --quiet
    "docker://$image" "dir:$work/out-$name")
  expect "$want" "${ours[@]}"
  expect "$want" "${theirs[@]}"
  t=$(median_ms "${ours[@]}")
  s=$(median_ms "${theirs[@]}")
  [ -n "$one_ms" ] || one_ms="$t"
  awk -v n="$name" -v w="$want" -v t="$t" -v s="$s" -v o="$one_ms" \
    'BEGIN {printf "%-9s %-6s %8.2f ms %8.2f ms %7.2fx %11.2fx\n", n, w, t, s, t / s, t / o}'
done
# containerd names the digest it pulls: one registry round trip fewer than resolving the tag.
one=("$bin/tollgate" verify "$registry/bench/one:v1" --policy "$work/policy.json" --insecure-registry "$registry")
digest=$("${one[@]}" -o json | sed -n 's/.*"digest": "\(sha256:[0-9a-f]*\)".*/\1/p' | head -n1)
expect allow "${one[@]}" --digest "$digest"
printf 'one, --digest as containerd calls it: %s ms\n' "$(median_ms "${one[@]}" --digest "$digest")"
echo "baseline /bin/true: $true_ms ms; medians of $runs runs ($profile build)"
