#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Summarise a run of mtp_bench, and regenerate BENCHMARKS.md's tables and charts.

  tools/bench-report.py --summary --json FILE      print the summary table (stdlib only)
  tools/bench-report.py --json FILE                 rewrite the tables in BENCHMARKS.md between
                                                     their marker comments and draw docs/img/*.png
  tools/bench-report.py --run [--build-dir DIR]     run the full suite first (JSON kept in
                                                     DIR/bench-full.json), then as above
  tools/bench-report.py --json FILE --print TAG     print one table (summary, round-trip, batch,
                                                     batch-forms, create, pool-lifetime, sweep, idle,
                                                     callers, churn, idle-callers) and nothing else

Charts need matplotlib; the summary and the tables need only the standard library.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUFFIX = re.compile(r"/(iterations|min_time|repeats|manual_time|real_time)[:/_].*$|/(manual_time|real_time)$")


def load(path):
    with open(path) as f:
        doc = json.load(f)
    rows = {}
    for b in doc.get("benchmarks", []):
        name = SUFFIX.sub("", b.get("run_name", b["name"]))
        kind = b.get("run_type")
        agg = b.get("aggregate_name")
        if b.get("error_occurred"):
            rows[name] = {"error": b.get("error_message", "error")}
            continue
        if kind == "aggregate" and agg != "median":
            continue
        if kind == "iteration" and name in rows:
            continue  # a single run (no aggregates) only when no median exists
        r = dict(b)
        r.update({k: v for k, v in b.items() if isinstance(v, (int, float))})
        rows[name] = r
    return doc.get("context", {}), rows


def get(rows, name, key):
    r = rows.get(name)
    if r is None or "error" in r:
        return None
    return r.get(key)


def fmt(v, digits=3):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def compare(ours, theirs, label):
    """Says which is faster, for costs (lower is better): '8.77x faster than the mutex pool'."""
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return None
    if theirs >= ours:
        return f"{fmt(theirs / ours)}x faster than {label}"
    return f"{fmt(ours / theirs)}x slower than {label}"


def ratio_text(r):
    if r is None:
        return ""
    return r if isinstance(r, str) else fmt(r) + "x"


def verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def work_sizes(rows, prefix):
    ws = set()
    for name in rows:
        if name.startswith(prefix + "/work_us:"):
            ws.add(float(name.rsplit(":", 1)[1]))
    return sorted(ws)


def break_even(rows, prefix, threshold=0.9):
    """Smallest W from which every larger W reaches `threshold` of the no-queue ceiling."""
    ws = work_sizes(rows, prefix)
    if not ws:
        return None, []
    series = [(w, get(rows, f"{prefix}/work_us:{w:g}", "vs_ceiling")) for w in ws]
    best = None
    for w, v in reversed(series):
        if v is None or v < threshold:
            break
        best = w
    return best, series


def summary_rows(rows):
    """(what, measured, reference, ratio, target, verdict) rows."""
    out = []
    p50 = lambda n: get(rows, n, "p50_us")
    hot, asleep = p50("round_trip/mtp/hot"), p50("round_trip/mtp/asleep")
    pp, fx, fxw = p50("floor/ping_pong"), p50("floor/futex/asleep"), p50("floor/futex_wake/asleep")
    mx, caf = p50("round_trip/mutex_pool/hot"), p50("round_trip/caf/hot")
    r = ratio(hot, pp)
    out.append(("round trip, awake (p50)", f"{fmt(hot)} us", f"ping-pong {fmt(pp)} us", r, "<= 1.5x", r is not None and r <= 1.5 if r else None))
    r = ratio(mx, hot)
    out.append(("  vs mutex pool (p50)", f"{fmt(hot)} us", f"mutex pool {fmt(mx)} us", compare(hot, mx, "the mutex pool"), ">= 10x faster", r >= 10 if r else None))
    r = ratio(caf, hot)
    out.append(("  vs CAF (p50)", f"{fmt(hot)} us", f"CAF {fmt(caf)} us", compare(hot, caf, "CAF"), ">= 10x faster", r >= 10 if r else None))
    hot_p = p50("round_trip/mtp/hot/caller_pinned")
    r = ratio(hot_p, pp)
    out.append(("  caller pinned to the other CPU", f"{fmt(hot_p)} us", f"ping-pong {fmt(pp)} us", r, "<= 1.5x", r <= 1.5 if r else None))
    # Asleep, like for like: threads pinned to different CPUs (a cross-CPU wake-up), and
    # threads the kernel places (it tends to wake a thread on its waker's CPU).
    asleep_p = p50("round_trip/mtp/asleep/caller_pinned")
    r = ratio(asleep_p, fx)
    out.append(("round trip, asleep, caller pinned (p50)", f"{fmt(asleep_p)} us", f"futex round trip, pinned {fmt(fx)} us", r, "<= 1.2x", r <= 1.2 if r else None))
    r = ratio(asleep_p, fxw)
    out.append(("  vs one futex wake-up, pinned", f"{fmt(asleep_p)} us", f"futex wake {fmt(fxw)} us", r, "(info: round trip / one wake-up)", None))
    fxu = p50("floor/futex_unpinned/asleep")
    r = ratio(asleep, fxu)
    out.append(("round trip, asleep, caller unpinned (p50)", f"{fmt(asleep)} us", f"futex round trip, unpinned {fmt(fxu)} us", r, "<= 1.2x", r <= 1.2 if r else None))
    b = get(rows, "batch/mtp/batch:10000/items:1000", "ns_per_msg")
    fl = get(rows, "floor/bulk_queue/workers:2/batch:10000/items:1000", "ns_per_msg")
    r = ratio(b, fl)
    out.append(("batch 10k over 1k items", f"{fmt(b)} ns/msg", f"bulk queue {fmt(fl)} ns/msg", r, "<= 2x", r <= 2 if r else None))
    for name, label in (("batch/mutex_pool/batch:10000/items:1000", "the mutex pool"), ("batch/caf/batch:10000/items:1000", "CAF")):
        v = get(rows, name, "ns_per_msg")
        out.append((f"  vs {label}", f"{fmt(b)} ns/msg", f"{label} {fmt(v)} ns/msg", compare(b, v, label), "(info)", None))
    c = get(rows, "create/mtp/batch:1000", "create_ns_per_item")
    c2 = get(rows, "create/mtp/batch:100000", "create_ns_per_item")
    out.append(("create 100k items, batches of 1k", f"{fmt(c)} ns/item", f"(batch of 100k: {fmt(c2)})", None, "<= 100 ns", c <= 100 if c else None))
    for regime in ("awake", "asleep"):
        w, series = break_even(rows, f"sweep/mtp/workers:2/{regime}")
        at1 = dict(series).get(1.0)
        out.append((f"break-even, 2 workers {regime}", f"{fmt(w)} us" if w else "not reached",
                    f"at 1 us: {fmt(at1)} of ceiling", None, "<= 1 us at 90% of ceiling", (w is not None and w <= 1.0) if series else None))
    idle = get(rows, "idle/mtp/spin:50us", "idle_ms_per_s")
    out.append(("idle after a burst", f"{fmt(idle)} ms/s", "", None, "< 1 ms/s", idle < 1 if idle is not None else None))
    out.extend(scale_summary_rows(rows))
    return out


def scale_summary_rows(rows):
    """Rows for same-CPU floors, batch forms, callers at scale, churn, idle callers, pool lifetime."""
    out = []
    p50 = lambda n: get(rows, n, "p50_us")
    co, cross = p50("round_trip/mtp/hot/caller_colocated"), p50("round_trip/mtp/hot/caller_pinned")
    sy, sf = p50("floor/same_cpu/yield"), p50("floor/same_cpu/futex")
    if co is not None or sy is not None:
        r = ratio(co, sy)
        out.append(("round trip, caller on the worker's CPU (p50)", f"{fmt(co)} us", f"same-CPU yield handoff {fmt(sy)} us", r, "(info)", None))
        r = ratio(co, sf)
        out.append(("  vs same-CPU futex handoff", f"{fmt(co)} us", f"same-CPU futex {fmt(sf)} us", r, "(info)", None))
        r = ratio(co, cross)
        out.append(("  vs caller on the other CPU", f"{fmt(co)} us", f"cross-CPU round trip {fmt(cross)} us", r, "(info)", None))
    fs = get(rows, "batch/forms/batch:10000/items:1000", "span_ns_per_msg")
    fv = get(rows, "batch/forms/batch:10000/items:1000", "vector_ns_per_msg")
    if fs is not None:
        r = get(rows, "batch/forms/batch:10000/items:1000", "vector_over_span")
        out.append(("batch 10k over 1k, vector form", f"{fmt(fv)} ns/msg", f"span form, same iterations {fmt(fs)} ns/msg", r, "(info)", None))
    for mode, label in (("send", "round trips"), ("batch:100", "batches of 100")):
        counts = caller_counts(rows, f"callers/mtp/{mode}")
        if not counts:
            continue
        lo, hi = counts[0], counts[-1]
        m_lo = get(rows, f"callers/mtp/{mode}/callers:{lo}", "msgs_per_s")
        m_hi = get(rows, f"callers/mtp/{mode}/callers:{hi}", "msgs_per_s")
        x_hi = get(rows, f"callers/mutex_pool/{mode}/callers:{hi}", "msgs_per_s")
        p99 = get(rows, f"callers/mtp/{mode}/callers:{hi}", "p99_us")
        xp99 = get(rows, f"callers/mutex_pool/{mode}/callers:{hi}", "p99_us")
        r = ratio(m_hi, m_lo)
        out.append((f"{hi} callers, {label}: throughput", f"{fmt(mps(m_hi))} M msg/s", f"{lo} caller: {fmt(mps(m_lo))} M msg/s", r, "(info)", None))
        r = ratio(m_hi, x_hi)
        out.append((f"  vs mutex pool, {hi} callers", f"{fmt(mps(m_hi))} M msg/s", f"mutex pool {fmt(mps(x_hi))} M msg/s", r, "(info: x faster)", None))
        r = ratio(p99, xp99)
        out.append((f"  p99 per call, {hi} callers", f"{fmt(p99)} us", f"mutex pool {fmt(xp99)} us", r, "(info)", None))
    name = churn_name(rows, "mtp")
    if name:
        t = fmt(get(rows, name, "threads"))
        r = get(rows, name, "p50_ratio")
        out.append((f"round trip after {t} caller threads (p50)", f"{fmt(get(rows, name, 'p50_after_us'))} us",
                    f"before {fmt(get(rows, name, 'p50_before_us'))} us", r, "<= 1.1x", r <= 1.1 if r is not None else None))
        d = get(rows, name, "rss_delta_mb")
        base = get(rows, churn_name(rows, "mtp_untouched") or "", "rss_delta_mb")
        out.append((f"RSS after {t} caller threads", f"{d:+.2f} MB" if d is not None else "n/a",
                    f"threads not touching the pool {base:+.2f} MB" if base is not None else "", None, "<= +2 MB", d <= 2 if d is not None else None))
        # The RSS does not grow where the churn reuses pages that earlier benchmarks freed; what
        # malloc holds does, so it is checked against the same bound.
        h = get(rows, name, "heap_delta_mb")
        out.append((f"  malloc'd memory after {t} caller threads", f"{h:+.2f} MB" if h is not None else "n/a",
                    "", None, "<= +2 MB", h <= 2 if h is not None else None))
    for how in ("exited", "blocked"):
        n = f"idle_callers/mtp/threads:1000/{how}"
        if n not in rows:
            continue
        r = get(rows, n, "p50_ratio")
        out.append((f"round trip after 1,000 callers ({how}), p50", f"{fmt(get(rows, n, 'p50_after_us'))} us",
                    f"1 caller {fmt(get(rows, n, 'p50_before_us'))} us", r, "(info)", None))
        r = get(rows, n, "idle_ratio")
        out.append((f"  idle CPU after 1,000 callers ({how})", f"{fmt(get(rows, n, 'idle_after_ms_per_s'))} ms/s",
                    f"1 caller {fmt(get(rows, n, 'idle_before_ms_per_s'))} ms/s", r, "(info)", None))
    d = get(rows, "pool_lifetime/mtp/default", "total_us")
    if d is not None:
        one = get(rows, "pool_lifetime/mtp/workers:1", "total_us")
        mx = get(rows, "pool_lifetime/mutex_pool/threads:2", "total_us")
        out.append(("pool construct + destroy, default options", f"{fmt(d)} us", f"1 worker {fmt(one)} us; mutex pool {fmt(mx)} us", None, "(info)", None))
    return out


def mps(v):
    return None if v is None else v / 1e6


def caller_counts(rows, prefix):
    return sorted({int(n.rsplit(":", 1)[1]) for n in rows if n.startswith(prefix + "/callers:")})


def churn_name(rows, kind):
    """The churn row of `kind` with the most threads (the full run's, else the quick run's)."""
    names = [n for n in rows if n.startswith(f"churn/{kind}/threads:")]
    return max(names, key=lambda n: get(rows, n, "threads") or 0) if names else None


def summary_table(rows):
    lines = ["| what | measured | reference (same run) | ratio | target | verdict |", "|---|---|---|---|---|---|"]
    for what, m, ref, r, target, ok in summary_rows(rows):
        lines.append(f"| {what} | {m} | {ref} | {ratio_text(r)} | {target} | {verdict(ok)} |")
    return "\n".join(lines)


def round_trip_table(rows):
    lines = ["| implementation | regime | p50 us | p99 us | mean us |", "|---|---|---|---|---|"]
    for name in sorted(n for n in rows if n.startswith("round_trip/") or (n.startswith("floor/") and "bulk" not in n)):
        parts = name.split("/")
        impl = parts[1]
        regime = "/".join(parts[2:])
        if name.startswith("floor/"):
            impl, regime = "floor: " + parts[1], "/".join(parts[2:]) or "spinning"
        lines.append(f"| {impl} | {regime} | {fmt(get(rows, name, 'p50_us'))} | {fmt(get(rows, name, 'p99_us'))} | {fmt(get(rows, name, 'mean_us'))} |")
    return "\n".join(lines)


def batch_table(rows):
    lines = ["| implementation | batch | items | ns/msg | M msg/s |", "|---|---|---|---|---|"]
    names = [n for n in rows if (n.startswith("batch/") and not n.startswith("batch/forms")) or n.startswith("floor/bulk_queue")]
    key = lambda n: (n.split("/")[0] != "floor", n.split("/")[1], get(rows, n, "items") or 0, get(rows, n, "batch") or 0)
    for n in sorted(names, key=key):
        impl = n.split("/")[1] + (" (" + n.split("/")[2] + ")" if n.startswith("floor/") else "")
        ips = get(rows, n, "items_per_second")
        lines.append(f"| {impl} | {fmt(get(rows, n, 'batch'))} | {fmt(get(rows, n, 'items'))} | {fmt(get(rows, n, 'ns_per_msg'))} | {fmt(ips / 1e6 if ips else None)} |")
    return "\n".join(lines)


def create_table(rows):
    lines = ["| implementation | how | create ns/item | remove ns/item |", "|---|---|---|---|"]
    for n in sorted(n for n in rows if n.startswith("create/")):
        p = n.split("/")
        lines.append(f"| {p[1]} | {'/'.join(p[2:])} | {fmt(get(rows, n, 'create_ns_per_item'))} | {fmt(get(rows, n, 'remove_ns_per_item'))} |")
    return "\n".join(lines)


def batch_forms_table(rows):
    lines = ["| batch | items | span form ns/msg | vector form ns/msg | vector / span |", "|---|---|---|---|---|"]
    for n in sorted(n for n in rows if n.startswith("batch/forms/")):
        lines.append(f"| {fmt(get(rows, n, 'batch'))} | {fmt(get(rows, n, 'items'))} | {fmt(get(rows, n, 'span_ns_per_msg'))} "
                     f"| {fmt(get(rows, n, 'vector_ns_per_msg'))} | {fmt(get(rows, n, 'vector_over_span'))}x |")
    return "\n".join(lines)


def pool_lifetime_table(rows):
    lines = ["| implementation | options | workers | construct us | destroy us | total us per pool |", "|---|---|---|---|---|---|"]
    for n in sorted(n for n in rows if n.startswith("pool_lifetime/")):
        p = n.split("/")
        lines.append(f"| {p[1]} | {'/'.join(p[2:])} | {fmt(get(rows, n, 'workers'))} | {fmt(get(rows, n, 'construct_us'))} "
                     f"| {fmt(get(rows, n, 'destroy_us'))} | {fmt(get(rows, n, 'total_us'))} |")
    return "\n".join(lines)


def callers_table(rows):
    lines = ["| callers | calls | mtp M msg/s | mtp p50 us | mtp p99 us | mutex pool M msg/s | mutex pool p50 us | mutex pool p99 us | mtp / mutex pool throughput |",
             "|---|---|---|---|---|---|---|---|---|"]
    for mode, label in (("send", "send"), ("batch:100", "batch of 100")):
        for c in sorted(set(caller_counts(rows, f"callers/mtp/{mode}")) | set(caller_counts(rows, f"callers/mutex_pool/{mode}"))):
            a, b = f"callers/mtp/{mode}/callers:{c}", f"callers/mutex_pool/{mode}/callers:{c}"
            ma, mb = get(rows, a, "msgs_per_s"), get(rows, b, "msgs_per_s")
            r = ratio(ma, mb)
            lines.append(f"| {c:,} | {label} | {fmt(mps(ma))} | {fmt(get(rows, a, 'p50_us'))} | {fmt(get(rows, a, 'p99_us'))} "
                         f"| {fmt(mps(mb))} | {fmt(get(rows, b, 'p50_us'))} | {fmt(get(rows, b, 'p99_us'))} | {fmt(r) + 'x' if r else 'n/a'} |")
    return "\n".join(lines)


def churn_table(rows):
    lines = ["| caller threads | threads / alive | p50 before us | p50 after us | after / before | RSS before MB | RSS after MB | RSS delta MB | malloc'd delta MB | churn s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n in sorted(n for n in rows if n.startswith("churn/")):
        p = n.split("/")
        d = get(rows, n, "rss_delta_mb")
        h = get(rows, n, "heap_delta_mb")
        lines.append(f"| {p[1]} | {fmt(get(rows, n, 'threads'))} / {fmt(get(rows, n, 'alive'))} | {fmt(get(rows, n, 'p50_before_us'))} "
                     f"| {fmt(get(rows, n, 'p50_after_us'))} | {fmt(get(rows, n, 'p50_ratio'))}x | {fmt(get(rows, n, 'rss_before_mb'))} "
                     f"| {fmt(get(rows, n, 'rss_after_mb'))} | {f'{d:+.2f}' if d is not None else 'n/a'} | {f'{h:+.2f}' if h is not None else 'n/a'} | {fmt(get(rows, n, 'churn_s'))} |")
    return "\n".join(lines)


def idle_callers_table(rows):
    lines = ["| 1,000 callers then | p50 1 caller us | p50 after us | after / before | idle 1 caller ms/s | idle after ms/s | after / before |",
             "|---|---|---|---|---|---|---|"]
    for n in sorted(n for n in rows if n.startswith("idle_callers/")):
        lines.append(f"| {n.rsplit('/', 1)[1]} | {fmt(get(rows, n, 'p50_before_us'))} | {fmt(get(rows, n, 'p50_after_us'))} "
                     f"| {fmt(get(rows, n, 'p50_ratio'))}x | {fmt(get(rows, n, 'idle_before_ms_per_s'))} "
                     f"| {fmt(get(rows, n, 'idle_after_ms_per_s'))} | {fmt(get(rows, n, 'idle_ratio'))}x |")
    return "\n".join(lines)


def sweep_prefixes(rows):
    pre = sorted({n.rsplit("/work_us:", 1)[0] for n in rows if n.startswith("sweep/")})
    return pre


def sweep_table(rows):
    pre = sweep_prefixes(rows)
    ws = sorted({w for p in pre for w in work_sizes(rows, p)})
    head = "| implementation | " + " | ".join(f"W={w:g} us" for w in ws) + " | break-even (90% of ceiling) |"
    lines = [head, "|---|" + "---|" * (len(ws) + 1)]
    for p in pre:
        cells = []
        for w in ws:
            s = get(rows, f"{p}/work_us:{w:g}", "speedup")
            f = get(rows, f"{p}/work_us:{w:g}", "vs_ceiling")
            cells.append(f"{s:.2f}x ({f:.0%})" if s is not None and f is not None else "n/a")
        be, _ = break_even(rows, p)
        lines.append(f"| {p[len('sweep/'):]} | " + " | ".join(cells) + f" | {fmt(be) + ' us' if be else 'not reached'} |")
    cells = []
    for w in ws:
        vals = [get(rows, f"{p}/work_us:{w:g}", "ceiling") for p in pre]
        vals = sorted(v for v in vals if v is not None)
        cells.append(f"{vals[len(vals) // 2]:.2f}x" if vals else "n/a")
    lines.append("| no-queue ceiling (median over rows) | " + " | ".join(cells) + " | |")
    return "\n".join(lines)


def idle_table(rows):
    lines = ["| implementation | setting | CPU ms per s idle |", "|---|---|---|"]
    for n in sorted(n for n in rows if n.startswith("idle/")):
        p = n.split("/")
        lines.append(f"| {p[1]} | {'/'.join(p[2:]) or 'default'} | {fmt(get(rows, n, 'idle_ms_per_s'))} |")
    return "\n".join(lines)


def machine_table(context, build_dir):
    flags = "?"
    cache = os.path.join(build_dir, "CMakeCache.txt") if build_dir else None
    if cache and os.path.exists(cache):
        vals = {}
        for line in open(cache):
            m = re.match(r"(CMAKE_BUILD_TYPE|CMAKE_CXX_FLAGS_RELEASE|CMAKE_CXX_FLAGS):\w+=(.*)", line)
            if m:
                vals[m.group(1)] = m.group(2).strip()
        flags = f"{vals.get('CMAKE_BUILD_TYPE', '?')}: {vals.get('CMAKE_CXX_FLAGS', '')} {vals.get('CMAKE_CXX_FLAGS_RELEASE', '')}".strip()
    rows = [
        ("CPU", context.get("mtp_cpu_model", "?")),
        ("CPUs allowed", context.get("mtp_allowed_cpus", str(context.get("num_cpus", "?")))),
        ("kernel", platform.release()),
        ("compiler", "g++ " + context.get("mtp_compiler", "?")),
        ("build", flags),
        ("run date", context.get("date", "?")),
        ("calibrated work", f"{float(context.get('mtp_work_iters_per_us', 0)):.0f} multiply-add steps per us"),
        ("quick run", "yes" if context.get("mtp_quick") == "1" else "no"),
        ("CAF baseline", "built" if context.get("mtp_caf") == "1" else "not built (CAF not found)"),
    ]
    return "| | |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def replace_block(text, tag, body):
    begin, end = f"<!-- bench:{tag}:begin -->", f"<!-- bench:{tag}:end -->"
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pat.search(text):
        print(f"bench-report: marker {begin} not found in BENCHMARKS.md; skipped", file=sys.stderr)
        return text
    return pat.sub(lambda _: f"{begin}\n{body}\n{end}", text)


def charts(rows, outdir, json_path=None):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        # pyenv and virtual environments hide the distribution's python3-matplotlib: retry
        # with the system interpreter.
        system = "/usr/bin/python3"
        if os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(system) and json_path:
            rc = subprocess.call([system, os.path.abspath(__file__), "--charts-only", "--json", json_path, "--img", outdir])
            if rc == 0:
                return
        print("bench-report: matplotlib not found; charts not drawn", file=sys.stderr)
        return
    os.makedirs(outdir, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 5))
    ceilings = {}
    for p in sweep_prefixes(rows):
        ws = work_sizes(rows, p)
        pts = [(w, get(rows, f"{p}/work_us:{w:g}", "speedup")) for w in ws]
        pts = [(w, s) for w, s in pts if s is not None]
        for w in ws:
            c = get(rows, f"{p}/work_us:{w:g}", "ceiling")
            if c is not None:
                ceilings.setdefault(w, []).append(c)
        if pts:
            ax.plot([w for w, _ in pts], [s for _, s in pts], marker="o", label=p[len("sweep/"):])
    if ceilings:
        ws = sorted(ceilings)
        med = [sorted(ceilings[w])[len(ceilings[w]) // 2] for w in ws]
        ax.plot(ws, med, "k--", label="no-queue ceiling (2 threads)")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("work per message (us)")
    ax.set_ylabel("speedup over sequential")
    ax.set_title("Speedup vs work size (2 vCPUs)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "bench-speedup.png"), dpi=110)
    plt.close(fig)

    names = [n for n in sorted(rows) if (n.startswith("round_trip/") and "spin:" not in n) or
             (n.startswith("floor/") and "bulk" not in n)]
    names = [n for n in names if get(rows, n, "p50_us") is not None]
    fig, ax = plt.subplots(figsize=(9, 5))
    y = range(len(names))
    ax.barh([i + 0.2 for i in y], [get(rows, n, "p99_us") for n in names], height=0.4, label="p99", color="#f4a582")
    ax.barh([i - 0.2 for i in y], [get(rows, n, "p50_us") for n in names], height=0.4, label="p50", color="#2166ac")
    ax.set_yticks(list(y))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("round trip (us, log scale)")
    ax.set_title("Round-trip latency per implementation")
    ax.legend()
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "bench-round-trip.png"), dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="mtp_bench JSON output to read")
    ap.add_argument("--run", action="store_true", help="run the full suite first")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--summary", action="store_true", help="print the summary table only")
    ap.add_argument("--charts-only", action="store_true", help="draw the charts only")
    ap.add_argument("--print", dest="print_tag", metavar="TAG", help="print one table and exit")
    ap.add_argument("--doc", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--img", default=os.path.join(ROOT, "docs", "img"))
    a = ap.parse_args()
    path = a.json
    if a.run:
        path = path or os.path.join(a.build_dir, "bench-full.json")
        rc = subprocess.call([os.path.join(ROOT, "tools", "run-benchmarks.sh"), "--build-dir", a.build_dir, "--json", path])
        if rc != 0:
            return rc
    if not path:
        ap.error("give --json FILE or --run")
    context, rows = load(path)
    errors = [n for n, r in rows.items() if "error" in r]
    if a.charts_only:
        charts(rows, a.img)
        return 0
    tables = {"summary": summary_table, "round-trip": round_trip_table, "batch": batch_table,
              "batch-forms": batch_forms_table, "create": create_table, "pool-lifetime": pool_lifetime_table,
              "sweep": sweep_table, "idle": idle_table, "callers": callers_table, "churn": churn_table,
              "idle-callers": idle_callers_table}
    if a.print_tag:
        if a.print_tag not in tables:
            ap.error(f"--print: one of {', '.join(tables)}")
        print(tables[a.print_tag](rows))
        return 1 if errors else 0
    if a.summary:
        print(summary_table(rows))
        for n in errors:
            print(f"ERROR in {n}: {rows[n]['error']}")
        return 1 if errors else 0
    with open(a.doc) as f:
        text = f.read()
    for tag, body in (("machine", machine_table(context, a.build_dir)), ("summary", summary_table(rows)),
                      ("round-trip", round_trip_table(rows)), ("batch", batch_table(rows)),
                      ("create", create_table(rows)), ("sweep", sweep_table(rows)), ("idle", idle_table(rows))):
        text = replace_block(text, tag, body)
    # Tables without a marker in the document are left out silently.
    for tag, fn in (("batch-forms", batch_forms_table), ("pool-lifetime", pool_lifetime_table), ("callers", callers_table),
                    ("churn", churn_table), ("idle-callers", idle_callers_table)):
        if f"<!-- bench:{tag}:begin -->" in text:
            text = replace_block(text, tag, fn(rows))
    with open(a.doc, "w") as f:
        f.write(text)
    charts(rows, a.img, path)
    print(summary_table(rows))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
