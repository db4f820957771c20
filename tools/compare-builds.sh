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
# EXTRA...          more mtp_bench arguments, e.g. --quick (one repetition per round: its
#                   single run counts as the round's median).
# Rows that report p50_us compare it; rows that also report msgs_per_s (the async rows) get a
# second line comparing messages per second; create/... rows compare create_ns_per_item.
set -euo pipefail
if [[ $# -lt 2 ]]; then sed -n '3,15p' "$0"; exit 2; fi
a="$1/bench/mtp_bench"
b="$2/bench/mtp_bench"
reps="${3:-6}"
filter="${4:-round_trip/mtp/(hot|asleep)(/caller_pinned)?/iter|batch/mtp/batch:(100|10000)/items:1000/}"
extra=("${@:5}")
for bin in "$a" "$b"; do [[ -x "$bin" ]] || { echo "compare-builds.sh: no $bin" >&2; exit 2; }; done
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for ((rep = 1; rep <= reps; ++rep)); do
  "$a" "${extra[@]}" --benchmark_filter="$filter" --benchmark_format=json > "$out/A-$rep.json" 2>/dev/null
  "$b" "${extra[@]}" --benchmark_filter="$filter" --benchmark_format=json > "$out/B-$rep.json" 2>/dev/null
done
python3 - "$out" <<'PY'
import glob, json, statistics, sys
runs = {}
for f in sorted(glob.glob(sys.argv[1] + '/*.json')):
    which = f.rsplit('/', 1)[1].split('-')[0]
    for bench in json.load(open(f))['benchmarks']:
        if bench.get('run_type') == 'aggregate' and bench.get('aggregate_name') != 'median':
            continue
        name = bench['name'].split('/iterations')[0].split('/min_time')[0]
        if 'p50_us' in bench:
            value = bench['p50_us']
        elif 'create_ns_per_item' in bench:  # create/...: ns per item created
            value = bench['create_ns_per_item']
        else:  # a batch: real_time is per batch, in us
            value = bench['real_time'] * 1000.0 / float(name.split('batch:')[1].split('/')[0])
        runs.setdefault(name, {}).setdefault(which, []).append(value)
        if 'msgs_per_s' in bench:
            runs.setdefault(name + ' msg/s', {}).setdefault(which, []).append(bench['msgs_per_s'])
print(f"{'benchmark':42s} {'unit':7s} {'A':>9s} {'B':>9s} {'B/A':>6s}  runs A | runs B")
for name, d in runs.items():
    ma, mb = statistics.median(d['A']), statistics.median(d['B'])
    if name.endswith(' msg/s'):
        name, unit = name[:-6], 'msg/s'
    elif 'round_trip' in name or name.startswith('async/'):
        unit = 'p50 us'
    else:
        unit = 'ns/msg'
    fmt = lambda xs: ' '.join(f'{x:.3g}' for x in xs)
    print(f"{name:42s} {unit:7s} {ma:9.4g} {mb:9.4g} {mb / ma:6.2f}  {fmt(d['A'])} | {fmt(d['B'])}")
PY
