#!/usr/bin/env bash
# Issue 16's adapter targets, measured in one run on this machine: resident memory of a server holding the base alone, the
# base + one all-linear r = 16 LoRA adapter, and two adapters over the base (once loaded and warmed up, and after the bench,
# which adds the passes' working memory); and the pair tokens/s of `qservice bench` (32 callers) with the adapter policy
# against the same base shape served as two full checkpoints (alternating, twice).
# Usage: tests/benchmarks/adapters.sh [seconds per bench level, default 30]. Work folder: $WORK (default /tmp/qservice-bench-adapters).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-30}
work=${WORK:-/tmp/qservice-bench-adapters}
for project in src/QService.Cli src/QService.Host; do dotnet build -c Release -v q "$project" >/dev/null || { echo "building $project failed" >&2; exit 1; }; done
cli=(dotnet src/QService.Cli/bin/Release/net10.0/qservice.dll)
host=src/QService.Host/bin/Release/net10.0/QService.Host.dll
grep -m1 '^model name' /proc/cpuinfo; grep -m1 -o -w -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' '; echo

[ -f "$work/pair/reference/model.safetensors" ] || "${cli[@]}" make-random-pair --output "$work/pair"
for n in 1 2; do
  [ -f "$work/adapter$n/adapter_model.safetensors" ] || "${cli[@]}" make-random-adapter --base "$work/pair/reference" --output "$work/adapter$n" --r 16 --alpha 32 --seed "$n"
done

pid=""
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap stop EXIT
# serve NAME ARGS...: starts the host on fixed ports, waits until ready.
serve() {
  local name=$1; shift
  dotnet "$host" --grpc-port 50091 --http-port 8091 --http-api-port 8092 --device cpu "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 240); do curl -fs http://127.0.0.1:8091/readyz >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "$name did not become ready; see $work/$name.log" >&2; exit 1
}
rss_mb() { curl -fs http://127.0.0.1:8091/metrics | awk '/^qservice_resident_memory_bytes/ {printf "%.0f", $2 / 1048576}'; }
bench() { "${cli[@]}" bench --server http://127.0.0.1:50091 --concurrency 32 --seconds "$seconds" | awk '$1 == 32 {print $3}'; }

declare -A rss loaded tps
run() {
  local name=$1; shift
  serve "$name" "$@"
  loaded[$name]=$(rss_mb)
  local t; t=$(bench)
  tps[$name]="${tps[$name]:-} $t"
  rss[$name]=$(rss_mb)
  echo "$name: $t pair tokens/s at 32 callers; resident memory ${loaded[$name]} MB loaded, ${rss[$name]} MB after the bench"
  stop
}
ref="$work/pair/reference"
run base-alone --policy "$ref" --reference "$ref"
run adapter --policy "$work/adapter1" --reference "$ref"
run two-full --policy "$work/pair/policy" --reference "$ref"
run two-adapters --policy "a=$work/adapter1" --policy "b=$work/adapter2" --reference "$ref"
run adapter --policy "$work/adapter1" --reference "$ref"
run two-full --policy "$work/pair/policy" --reference "$ref"

mean() { echo "$1" | awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.0f", s / NF}'; }
echo
echo "| server | resident MB loaded | vs base alone | resident MB after the bench | vs base alone | pair tokens/s (32 callers) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for name in base-alone adapter two-adapters two-full; do
  awk -v n="$name" -v l="${loaded[$name]}" -v lb="${loaded[base-alone]}" -v r="${rss[$name]}" -v b="${rss[base-alone]}" \
    -v t="$(mean "${tps[$name]}")" 'BEGIN {printf "| %s | %d | %.2fx | %d | %.2fx | %d |\n", n, l, l / lb, r, r / b, t}'
done
awk -v a="$(mean "${tps[adapter]}")" -v f="$(mean "${tps[two-full]}")" \
  'BEGIN {printf "adapter policy: %.1f %% of the pair tokens/s of two full checkpoints (target >= 85 %%)\n", 100 * a / f}'
