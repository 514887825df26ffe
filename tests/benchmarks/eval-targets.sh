#!/usr/bin/env bash
# The measured targets of `qservice eval` (README, "Evaluating a pair on a preference dataset"), in one run:
#   throughput against `qservice bench` on the 134M pair, two servers against one, resume after a kill, 1 GB Parquet memory.
# Needs a Release build and a random 134M pair: `qservice make-random-pair --output /tmp/pair134m`.
# Usage: bash tests/benchmarks/eval-targets.sh [PAIR_DIR] [WORK_DIR]; prints the load average before and after (the machine may be shared).
# Environment: PAIRS (2000), PROMPT_TOKENS / RESPONSE_TOKENS (32), BENCH_SECONDS (60), RESUME_ROWS (480), PARQUET (1; 0 leaves it out).
# The servers of the one-thread scale-out stay up beside the first two (idle): 4 x 134M pairs, about 12 GB resident.
set -euo pipefail
cd "$(dirname "$0")/../.."
PAIR=${1:-/tmp/pair134m}; WORK=${2:-/tmp/eval-targets}; PAIRS=${PAIRS:-2000}; P=${PROMPT_TOKENS:-32}; R=${RESPONSE_TOKENS:-32}
RESUME_ROWS=${RESUME_ROWS:-480}
Q="dotnet src/QService.Cli/bin/Release/net10.0/qservice.dll"
HOST="dotnet src/QService.Host/bin/Release/net10.0/QService.Host.dll"
mkdir -p "$WORK"; pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
serve() { # port [extra args]: a 134M server on its own ports, once ready
  local port=$1; shift
  $HOST --policy "$PAIR/policy" --reference "$PAIR/reference" --grpc-port "$port" --http-port $((port + 1)) --http-api-port $((port + 2)) \
    --device cpu "$@" > "$WORK/server-$port.log" 2>&1 & pids+=($!)
  until curl -sf "http://127.0.0.1:$((port + 1))/readyz" > /dev/null; do sleep 1; done
}
cpu() { # the CPU seconds a process has used so far (user + system)
  awk -v tck="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / tck }' "/proc/$1/stat"
}
timed() { # label, then the command: runs it and prints its wall time and each server's CPU use meanwhile (100 % = one core)
  local label=$1; shift
  local before=() t0 t1; for p in "${pids[@]}"; do before+=("$(cpu "$p")"); done; t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N); local i=0 use=""
  for p in "${pids[@]}"; do use+=" $(python3 -c "print(f'{($(cpu "$p") - ${before[$i]}) / ($t1 - $t0) * 100:.0f} %')")"; i=$((i + 1)); done
  echo "$label: $(python3 -c "print(f'{$t1 - $t0:.1f}')") s; servers' CPU use:$use of one core (the machine has $(nproc))"
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2);" \
  "$(grep -m1 flags /proc/cpuinfo | grep -o -w -E 'avx512f|avx512_bf16|amx_tile' | tr '\n' ' ')"
$Q eval make-data --kind random-ids --pairs "$PAIRS" --prompt-tokens "$P" --response-tokens "$R" --output "$WORK/ids.jsonl"
serve 51001
# The random pair has no EOS token: --no-eos (responses scored as they are).
echo "== throughput: bench at 32 callers, then eval over $PAIRS pairs ($P + $R tokens), same server"
timed "bench" sh -c "$Q bench --server http://127.0.0.1:51001 --concurrency 32 --seconds ${BENCH_SECONDS:-60} --prompt-tokens $P --response-tokens $R \
  | tee $WORK/bench.txt"
timed "eval, one server" sh -c "$Q eval --data $WORK/ids.jsonl --output $WORK/one.jsonl --server http://127.0.0.1:51001 --no-eos --json > $WORK/eval-one.json"
echo "== scale-out: the same file over two servers on this machine"
serve 51011
timed "eval, two servers" sh -c "$Q eval --data $WORK/ids.jsonl --output $WORK/two.jsonl --server http://127.0.0.1:51001,http://127.0.0.1:51011 --no-eos --json \
  > $WORK/eval-two.json"
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
a = [json.loads(l) for l in open(f"{w}/one.jsonl")]; b = [json.loads(l) for l in open(f"{w}/two.jsonl")]
same = sum(x == y for x, y in zip(a, b))
diff = max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in ("chosen_reward", "rejected_reward"))
print(f"two servers vs one: {len(a)} rows each, {same} identical rows, max reward difference {diff:.3g}")
one, two = json.load(open(f"{w}/eval-one.json")), json.load(open(f"{w}/eval-two.json"))
for name, r in (("one server", one), ("two servers", two)):
    print(f"eval, {name}: {r['pairs']} pairs, {r['bad_rows']} bad, {r['seconds']:.1f} s, {r['pair_tokens_per_second']:.0f} pair tokens/s")
print(f"pair tokens/s: one server {one['pair_tokens_per_second']:.0f}, two servers {two['pair_tokens_per_second']:.0f} "
      f"(x{two['pair_tokens_per_second'] / one['pair_tokens_per_second']:.2f})")
bench = next(float(l.split()[2]) for l in open(f"{w}/bench.txt") if l.split() and l.split()[0] == "32")
print(f"throughput: eval {one['pair_tokens_per_second']:.0f} pair tokens/s against bench {bench:.0f}: {one['pair_tokens_per_second'] / bench:.1%} of bench")
PY
echo "== scale-out without oversubscription: one intra-op thread per server (two servers, a core each), against one server of one thread"
serve 51021 --threads 1
timed "eval, one server of one thread" sh -c "$Q eval --data $WORK/ids.jsonl --output $WORK/one-t1.jsonl --server http://127.0.0.1:51021 --no-eos --json \
  > $WORK/eval-one-t1.json"
serve 51031 --threads 1
timed "eval, two servers of one thread" sh -c "$Q eval --data $WORK/ids.jsonl --output $WORK/two-t1.jsonl \
  --server http://127.0.0.1:51021,http://127.0.0.1:51031 --no-eos --json > $WORK/eval-two-t1.json"
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
rows = {n: open(f"{w}/{n}.jsonl").read() for n in ("one", "one-t1", "two-t1")}
speed = {n: json.load(open(f"{w}/eval-{n}.json"))["pair_tokens_per_second"] for n in ("one", "one-t1", "two-t1")}
print(f"one thread: two servers {speed['two-t1']:.0f} pair tokens/s against one server of one thread {speed['one-t1']:.0f} "
      f"(x{speed['two-t1'] / speed['one-t1']:.2f}) and one server of two threads {speed['one']:.0f} (x{speed['two-t1'] / speed['one']:.2f}); "
      f"output identical to one server of one thread: {rows['two-t1'] == rows['one-t1']}, to one server of two threads: {rows['two-t1'] == rows['one']}")
PY
echo "== resume: kill at a random point, resume, compare with the unbroken one-server run (its first $RESUME_ROWS rows)"
kill_at=$(( (RANDOM % (RESUME_ROWS - 40)) + 20 )) # a random row count, past the first request
rm -f "$WORK/resumed.jsonl"
$Q eval --data "$WORK/ids.jsonl" --output "$WORK/resumed.jsonl" --server http://127.0.0.1:51001 --no-eos --limit "$RESUME_ROWS" --json > /dev/null 2>&1 & run=$!
until [ -f "$WORK/resumed.jsonl" ] && [ "$(wc -l < "$WORK/resumed.jsonl")" -ge "$kill_at" ]; do sleep 0.2; done
kill -9 "$run" || true; wait "$run" 2>/dev/null || true
echo "killed (kill -9) at $(wc -l < "$WORK/resumed.jsonl") rows written (aimed at $kill_at)"
$Q eval --data "$WORK/ids.jsonl" --output "$WORK/resumed.jsonl" --server http://127.0.0.1:51001 --no-eos --limit "$RESUME_ROWS" --resume --json \
  2>&1 > /dev/null | grep -m1 resuming || true
head -n "$RESUME_ROWS" "$WORK/one.jsonl" > "$WORK/one-head.jsonl"
cmp "$WORK/one-head.jsonl" "$WORK/resumed.jsonl" && echo "resumed output byte-identical to the unbroken run's first $RESUME_ROWS rows" || python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
a = [json.loads(l) for l in open(f"{w}/one-head.jsonl")]; b = [json.loads(l) for l in open(f"{w}/resumed.jsonl")]
print(f"resumed NOT byte-identical: {len(b)} rows (unbroken {len(a)}), order {'same' if [x['index'] for x in a] == [x['index'] for x in b] else 'DIFFERENT'}, "
      f"{sum(x == y for x, y in zip(a, b))} identical rows, max reward difference "
      f"{max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in ('chosen_reward', 'rejected_reward')):.3g}")
PY
[ "${PARQUET:-1}" = 1 ] || { echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"; exit 0; } # PARQUET=0: the memory target left out
echo "== memory: read and check a 1 GB Parquet file, in row groups of 1,000 rows (make-data's and HF datasets' default) and of 10,000"
for group in 1000 10000; do
  big="$WORK/big-$group.parquet"
  [ -f "$big" ] || $Q eval make-data --kind random-ids --pairs 420000 --prompt-tokens 128 --response-tokens 256 --row-group "$group" --output "$big"
  /usr/bin/time -v $Q eval --data "$big" --output "$WORK/unused.jsonl" --check-only 2> "$WORK/time.txt"
  echo "$(stat -c %s "$big") bytes, row groups of $group rows: $(grep -E "Maximum resident" "$WORK/time.txt" | xargs), $(grep Elapsed "$WORK/time.txt" | xargs)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
