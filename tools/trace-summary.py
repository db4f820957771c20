#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Summarises a messaging_thread_pool trace (Chrome trace-event JSON, see README "A trace you
can look at"): per-worker utilisation, the busiest items, the longest messages; with --png,
draws a timeline (one row per worker, one bar per message, sleeps in grey).

    python3 tools/trace-summary.py trace.json [--top N] [--png timeline.png]
"""
import argparse
import collections
import json
import sys


def load(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"}
    slices = [e for e in events if e.get("ph") == "X"]
    return names, slices


def summarise(names, slices, top):
    messages = [e for e in slices if e.get("cat") == "message"]
    if not messages:
        print("no messages in the trace")
        return
    start = min(e["ts"] for e in slices)
    end = max(e["ts"] + e["dur"] for e in slices)
    span = max(end - start, 1e-9)
    print(f"{len(messages)} messages over {span / 1000:.3f} ms on {len(names) or 'unknown'} workers")
    print("\nper worker: busy / span, messages, asleep")
    busy = collections.Counter()
    count = collections.Counter()
    asleep = collections.Counter()
    for e in slices:
        if e.get("cat") == "message":
            busy[e["tid"]] += e["dur"]
            count[e["tid"]] += 1
        else:
            asleep[e["tid"]] += e["dur"]
    for tid in sorted(set(names) | set(busy)):
        print(f"  {names.get(tid, tid)!s:>10}: {100 * busy[tid] / span:5.1f}%  {count[tid]:8d}  "
              f"{100 * asleep[tid] / span:5.1f}%")
    per_item = collections.defaultdict(lambda: [0, 0.0])
    for e in messages:
        item = e.get("args", {}).get("id")
        per_item[item][0] += 1
        per_item[item][1] += e["dur"]
    print(f"\nbusiest items (by time): id, messages, total us")
    for item, (n, total) in sorted(per_item.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {item!s:>12} {n:8d} {total:12.1f}")
    print(f"\nlongest messages: us, worker, item, name")
    for e in sorted(messages, key=lambda e: -e["dur"])[:top]:
        print(f"  {e['dur']:10.1f}  {names.get(e['tid'], e['tid'])!s:>10}  {e.get('args', {}).get('id')!s:>8}  {e['name']}")


def draw(names, slices, path):
    try:
        import matplotlib
    except ImportError:
        sys.exit("--png needs matplotlib (Debian: python3-matplotlib; run with /usr/bin/python3)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tids = sorted(set(names) | {e["tid"] for e in slices})
    start = min(e["ts"] for e in slices)
    kinds = sorted({e["name"] for e in slices if e.get("cat") == "message"})
    colours = {k: plt.cm.tab10(i % 10) for i, k in enumerate(kinds)}
    fig, ax = plt.subplots(figsize=(10, 1 + 0.6 * len(tids)))
    for row, tid in enumerate(tids):
        for cat, colour_of in (("idle", lambda e: "0.85"), ("message", lambda e: colours[e["name"]])):
            bars = [e for e in slices if e["tid"] == tid and e.get("cat") == cat]
            ax.broken_barh([((e["ts"] - start) / 1000, max(e["dur"], 0.05) / 1000) for e in bars],
                           (row - 0.35, 0.7), facecolors=[colour_of(e) for e in bars], linewidth=0)
    ax.set_yticks(range(len(tids)), [names.get(t, str(t)) for t in tids])
    ax.set_xlabel("ms since the pool started")
    ax.invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[k]) for k in kinds]
    handles.append(plt.Rectangle((0, 0), 1, 1, color="0.85"))
    ax.legend(handles, [k.split("::")[-1] for k in kinds] + ["asleep"], loc="upper center",
              bbox_to_anchor=(0.5, -0.25), ncol=min(6, len(kinds) + 1), frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\ntimeline: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--png")
    args = parser.parse_args()
    names, slices = load(args.trace)
    summarise(names, slices, args.top)
    if args.png and slices:
        draw(names, slices, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
