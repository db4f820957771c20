#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Scaling table: the round-trip, batch and callers benchmarks of mtp_bench for every worker count
# against every caller count, on whatever machine this runs on, as one Markdown table.
#
#   tools/scaling.sh [--build-dir DIR] [--max N] [--every] [--full] [--out FILE]
#
# --build-dir  the CMake build directory (default: build); the binary is DIR/bench/mtp_bench.
# --max N      the largest worker and caller count (default: nproc).
# --every      every count 1..N (default: 1, 2, 4, ... and N, which is every count up to 4).
# --full       the full-length runs (default: mtp_bench --quick, a few seconds per worker count).
# --out FILE   also write the table to FILE (default: DIR/scaling.md).
# Worker counts go through MTP_BENCH_WORKERS, caller counts through MTP_BENCH_CALLERS. The
# round-trip (one caller, p50) and batch (10,000 requests over 1,000 items from one caller)
# columns do not depend on the caller count and are shown in the callers = 1 rows.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="build"
max="$(nproc)"
every=""
quick="--quick"
out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --max) max="$2"; shift 2 ;;
    --every) every=1; shift ;;
    --full) quick=""; shift ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "scaling.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
bin="$build/bench/mtp_bench"
if [[ ! -x "$bin" ]]; then
  echo "scaling.sh: $bin not found; build it first (cmake --build $build --target mtp_bench)" >&2
  exit 2
fi
[[ -n "$out" ]] || out="$build/scaling.md"

counts=()
if [[ -n "$every" ]]; then
  for ((n = 1; n <= max; ++n)); do counts+=("$n"); done
else
  for ((n = 1; n < max; n *= 2)); do counts+=("$n"); done
  counts+=("$max")
fi
callers="$(IFS=,; echo "${counts[*]}")"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
filter='^(round_trip/mtp/hot/iterations|batch/mtp/batch:10000/items:1000/|callers/mtp/)'
status=0
for w in "${counts[@]}"; do
  echo "scaling.sh: workers=$w callers=$callers" >&2
  MTP_BENCH_WORKERS="$w" MTP_BENCH_CALLERS="$callers" "$bin" $quick --benchmark_filter="$filter" \
    --benchmark_out="$tmp/workers-$w.json" --benchmark_out_format=json > "$tmp/workers-$w.log" 2>&1 || {
    echo "scaling.sh: mtp_bench failed for workers=$w (log follows)" >&2
    tail -20 "$tmp/workers-$w.log" >&2
    status=1
  }
done

python3 - "$root" "$tmp" "$quick" "${counts[@]}" <<'EOF' | tee "$out"
import importlib.util, os, sys
root, tmp, quick, counts = sys.argv[1], sys.argv[2], sys.argv[3], [int(c) for c in sys.argv[4:]]
spec = importlib.util.spec_from_file_location("bench_report", os.path.join(root, "tools", "bench-report.py"))
br = importlib.util.module_from_spec(spec)
spec.loader.exec_module(br)
fmt, get = br.fmt, br.get
ctx = {}
print("| workers | callers | round trip p50 us (1 caller) | batch 10k ns/msg (1 caller) | send: M msg/s | send p50 us | send p99 us | batch of 100: M msg/s | batch of 100 p50 us | batch of 100 p99 us |")
print("|---|---|---|---|---|---|---|---|---|---|")
for w in counts:
    path = os.path.join(tmp, f"workers-{w}.json")
    if not os.path.exists(path):
        print(f"| {w} | (run failed) | | | | | | | | |")
        continue
    ctx, rows = br.load(path)
    for c in counts:
        s, b = f"callers/mtp/send/callers:{c}", f"callers/mtp/batch:100/callers:{c}"
        m = lambda n: (lambda v: None if v is None else v / 1e6)(get(rows, n, "msgs_per_s"))
        rt = fmt(get(rows, "round_trip/mtp/hot", "p50_us")) if c == 1 else ""
        bt = fmt(get(rows, "batch/mtp/batch:10000/items:1000", "ns_per_msg")) if c == 1 else ""
        print(f"| {w} | {c} | {rt} | {bt} | {fmt(m(s))} | {fmt(get(rows, s, 'p50_us'))} | {fmt(get(rows, s, 'p99_us'))} "
              f"| {fmt(m(b))} | {fmt(get(rows, b, 'p50_us'))} | {fmt(get(rows, b, 'p99_us'))} |")
print()
print(f"{ctx.get('mtp_cpu_model', '?')}, {ctx.get('mtp_allowed_cpus', '?')} CPUs allowed, {ctx.get('date', '?')}; "
      f"mtp_bench {quick or '(full)'}; medians where repeated; default placement.")
EOF
exit $status
