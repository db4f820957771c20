#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Compares two builds of mtp_bench in one run, interleaved (A, B, A, B, ...), so that the
# machine's drift hits both alike; prints the median over the repetitions of each benchmark's
# median, for each build, and their ratio. Round trips report p50 in us; batches ns per message.
#
#   tools/compare-builds.sh BUILD_A BUILD_B [REPETITIONS] [FILTER]
#
# BUILD_A, BUILD_B  build directories with bench/mtp_bench (e.g. a Release build of an older
#                   commit in a git worktree, and this tree's), configured with
#                   -DMTP_BUILD_BENCHMARKS=ON.
# REPETITIONS       interleaved rounds (default 6).
# FILTER            a --benchmark_filter (default: awake and asleep round trips, caller free and
#                   pinned; batches of 100 and 10,000 over 1,000 items).
set -euo pipefail
if [[ $# -lt 2 ]]; then sed -n '3,15p' "$0"; exit 2; fi
a="$1/bench/mtp_bench"
b="$2/bench/mtp_bench"
reps="${3:-6}"
filter="${4:-round_trip/mtp/(hot|asleep)(/caller_pinned)?/iter|batch/mtp/batch:(100|10000)/items:1000/}"
for bin in "$a" "$b"; do [[ -x "$bin" ]] || { echo "compare-builds.sh: no $bin" >&2; exit 2; }; done
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for ((rep = 1; rep <= reps; ++rep)); do
  "$a" --benchmark_filter="$filter" --benchmark_format=json > "$out/A-$rep.json" 2>/dev/null
  "$b" --benchmark_filter="$filter" --benchmark_format=json > "$out/B-$rep.json" 2>/dev/null
done
python3 - "$out" <<'PY'
import glob, json, statistics, sys
runs = {}
for f in sorted(glob.glob(sys.argv[1] + '/*.json')):
    which = f.rsplit('/', 1)[1].split('-')[0]
    for bench in json.load(open(f))['benchmarks']:
        if bench.get('aggregate_name') != 'median':
            continue
        name = bench['name'].split('/iterations')[0].split('/min_time')[0]
        if 'p50_us' in bench:
            value = bench['p50_us']
        else:  # a batch: real_time is per batch, in us
            value = bench['real_time'] * 1000.0 / float(name.split('batch:')[1].split('/')[0])
        runs.setdefault(name, {}).setdefault(which, []).append(value)
print(f"{'benchmark':42s} {'unit':7s} {'A':>9s} {'B':>9s} {'B/A':>6s}  runs A | runs B")
for name, d in runs.items():
    ma, mb = statistics.median(d['A']), statistics.median(d['B'])
    unit = 'p50 us' if 'round_trip' in name else 'ns/msg'
    fmt = lambda xs: ' '.join(f'{x:.3g}' for x in xs)
    print(f"{name:42s} {unit:7s} {ma:9.3f} {mb:9.3f} {mb / ma:6.2f}  {fmt(d['A'])} | {fmt(d['B'])}")
PY
