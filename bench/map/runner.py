#!/usr/bin/env python3
"""runner.py - runs the map drivers interleaved, takes medians, prints the
comparison table, checks the targets of issue 3 and writes the JSON and SVG.

Called by run.sh (which installs and builds); usable alone:
    runner.py --bin DIR --out DIR [--quick] [--runs N] [--impls a,b,...]

Interleaving: for every size, run r of every implementation comes before
run r+1 of any (A B C A B C ...), and the order rotates from run to run, so
a slow minute on the shared machine lands on all of them alike.  Each run is
a fresh process.  Figures are medians over the runs.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svg  # noqa: E402  (bench/map/svg.py)

PHASES = ["insert", "hit", "miss", "iter", "delete"]
KEYS = ["u64", "str"]
# gomap-swiss / gomap-classic: drv_gomap with GMDEBUG=mapengine=swiss|classic;
# gomap-classic-gc: classic maps on the GC heap (GOMAP_BENCH_GC=1)
# (wrappers written by run.sh); "gomap" is the default engine.
ORDER = ["gomap-swiss", "gomap-classic", "gomap-classic-gc", "gomap", "go", "boost", "absl", "khash"]
# total operations per phase per run: N x reps
REPS_FULL = {1000: 2000, 100000: 10, 10000000: 1}
REPS_QUICK = {1000: 1000, 100000: 5}
RUNS_FULL = {1000: 5, 100000: 5, 10000000: 3}
RUNS_QUICK = {1000: 3, 100000: 3}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[:3]
    except OSError:
        return []


def run_driver(binary, args, timeout=900):
    cmd = [binary] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
    line = p.stdout.strip().splitlines()[-1]
    return json.loads(line)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_n(n):
    return {1000: "1K", 100000: "100K", 10000000: "10M"}.get(n, str(n))


def fmt_ns(v):
    if v is None:
        return "-"
    return f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}x"


def measure(opts, impls, binaries):
    sizes = sorted(REPS_QUICK if opts.quick else REPS_FULL)
    reps = REPS_QUICK if opts.quick else REPS_FULL
    runs = {n: (opts.runs or (RUNS_QUICK if opts.quick else RUNS_FULL)[n]) for n in sizes}
    raw, failed = [], {}
    steps = sum(runs[n] * len(KEYS) * len(impls) * 2 for n in sizes)
    done, t_start = 0, time.time()
    for n in sizes:
        for r in range(runs[n]):
            rot = r % len(impls)
            order = impls[rot:] + impls[:rot]
            for keys in KEYS:
                for mode in ("phases", "latency"):
                    # the latency pass times every insert alone: one map is
                    # enough above 1K, where a run holds >= 100K samples
                    nreps = reps[n] if (mode == "phases" or n <= 1000) else 1
                    for impl in order:
                        done += 1
                        if (impl, keys, n) in failed:
                            continue
                        try:
                            rec = run_driver(binaries[impl], ["--mode", mode, "--keys", keys,
                                                              "--n", str(n), "--reps", str(nreps)])
                        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                            # one implementation failing must not lose the others' figures
                            log(f"FAILED, left out for {keys} N={fmt_n(n)}: {e}")
                            failed[(impl, keys, n)] = str(e)[-400:]
                            continue
                        rec["run"] = r
                        rec["impl"] = impl  # drv_gomap reports "gomap" for both engines
                        raw.append(rec)
                    el = time.time() - t_start
                    log(f"N={fmt_n(n)} run {r + 1}/{runs[n]} {keys} {mode}: done "
                        f"({done}/{steps} processes, {el:.0f}s elapsed, load {' '.join(loadavg())})")
                    sys.stderr.flush()
    shapes_raw = []
    nshape = opts.runs or (1 if opts.quick else 3)
    for r in range(nshape):
        for impl in impls:
            if (impl, "shapes", 0) in failed:
                continue
            try:
                rec = run_driver(binaries[impl], ["--mode", "shapes", "--reps", "1" if opts.quick else "2"])
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                log(f"FAILED, left out of the shapes: {e}")
                failed[(impl, "shapes", 0)] = str(e)[-400:]
                continue
            rec["run"] = r
            rec["impl"] = impl
            shapes_raw.append(rec)
        log(f"shapes run {r + 1}/{nshape}: done")
    return raw, shapes_raw, runs, reps, failed


def aggregate(raw, shapes_raw, impls):
    res = {}
    for rec in raw:
        key = (rec["impl"], rec["keys"], rec["n"])
        slot = res.setdefault(key, {"ns": {p: [] for p in PHASES}, "lat": {}})
        if rec["mode"] == "phases":
            for p in PHASES:
                slot["ns"][p].append(rec["ns"][p])
        else:
            for f in ("lat_max_ns", "lat_p9999_ns", "lat_p999_ns", "lat_p50_ns",
                      "rss_bpe", "peak_bpe", "alloc_bpe", "clock_ns", "invol_csw", "minflt", "lat_max_at"):
                slot["lat"].setdefault(f, []).append(rec[f])
            # the inserts the thread was not switched out during (C/C++ drivers)
            for f in ("lat_switched", "lat_quiet_max_ns", "lat_quiet_max_at", "lat_quiet_p9999_ns"):
                if f in rec:
                    slot["lat"].setdefault(f, []).append(rec[f])
            if rec.get("shape") and "shape" not in slot:
                slot["shape"] = rec["shape"]    # the table's shape, as the map reports it
    out = []
    for (impl, keys, n), slot in sorted(res.items(), key=lambda kv: (kv[0][1], kv[0][2], ORDER.index(kv[0][0]))):
        row = {"impl": impl, "keys": keys, "n": n,
               "ns_per_op": {p: med(v) for p, v in slot["ns"].items()},
               "ns_per_op_runs": slot["ns"]}
        for f, v in slot["lat"].items():
            row[f] = med(v)
            row[f + "_runs"] = v
        if "shape" in slot:
            row["shape_after_insert"] = slot["shape"]
        out.append(row)
    shapes = {}
    for rec in shapes_raw:
        for name, v in rec["results"].items():
            shapes.setdefault(name, {}).setdefault(rec["impl"], []).append(v)
    shapes_med = {name: {impl: med(v) for impl, v in per.items()} for name, per in shapes.items()}
    return out, shapes_med


def lookup(rows, impl, keys, n):
    for r in rows:
        if r["impl"] == impl and r["keys"] == keys and r["n"] == n:
            return r
    return None


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def print_tables(rows, shapes, impls, sizes, runs):
    lines = []
    w = max(10, 1 + max((len(i) for i in impls), default=0))
    for keys in KEYS:
        for n in sizes:
            cols = [lookup(rows, i, keys, n) for i in impls]
            if not any(cols):
                continue
            title = "u64 -> u64" if keys == "u64" else "16-byte string -> u64"
            lines.append("")
            lines.append(f"== {title}, N = {n:,} (median of {runs[n]} runs) ==")
            lines.append(f"{'ns/op':<22}" + "".join(f"{i:>{w}}" for i in impls))
            for p in PHASES:
                lines.append(f"{p:<22}" + "".join(f"{fmt_ns(c['ns_per_op'][p] if c else None):>{w}}" for c in cols))
            for f, label, scale in (("rss_bpe", "bytes/entry RSS", 1), ("peak_bpe", "bytes/entry peak RSS", 1),
                                    ("alloc_bpe", "bytes/entry allocator", 1),
                                    ("lat_p50_ns", "insert p50 (ns)", 1),
                                    ("lat_p9999_ns", "insert p99.99 (us)", 1e-3),
                                    ("lat_max_ns", "insert max (us)", 1e-3),
                                    ("invol_csw", "preemptions in lat.", 1),
                                    ("lat_switched", "inserts switched out", 1),
                                    ("lat_quiet_p9999_ns", "  others: p99.99 (us)", 1e-3),
                                    ("lat_quiet_max_ns", "  others: max (us)", 1e-3),
                                    ("minflt", "page faults in lat.", 1)):
                vals = []
                for c in cols:
                    v = c.get(f) if c else None
                    if f in ("rss_bpe", "peak_bpe") and n < 100000:
                        v = None    # a few KB: below the page granularity of RSS
                    vals.append("-" if v is None else (f"{v * scale:.0f}" if f in ("invol_csw", "minflt", "lat_switched")
                                                       else f"{v * scale:.1f}"))
                lines.append(f"{label:<22}" + "".join(f"{v:>{w}}" for v in vals))
            for ref, label, inv in (("go", "speedup over Go", True), ("boost", "time vs boost", False)):
                rc = lookup(rows, ref, keys, n)
                if rc is None:
                    continue
                lines.append(f"-- {label} ({'go/impl: >1 is faster than Go' if inv else 'impl/boost: <1 is faster than boost'})")
                for p in PHASES:
                    cells = []
                    for c in cols:
                        if c is None:
                            cells.append("-")
                        elif inv:
                            cells.append(fmt_ratio(ratio(rc["ns_per_op"][p], c["ns_per_op"][p])))
                        else:
                            cells.append(fmt_ratio(ratio(c["ns_per_op"][p], rc["ns_per_op"][p])))
                    lines.append(f"  {p:<20}" + "".join(f"{v:>{w}}" for v in cells))
    if shapes:
        lines.append("")
        lines.append("== Go's benchmark shapes, u64 -> u64 (ns per operation as Go's benchmarks count it) ==")
        have = [i for i in impls if any(i in v for v in shapes.values())]
        lines.append(f"{'shape':<28}" + "".join(f"{i:>{w + 2}}" for i in have)
                     + ("   go/gomap" if "gomap" in have and "go" in have else ""))
        for name, per in shapes.items():
            line = f"{name:<28}" + "".join(f"{fmt_ns(per.get(i)):>{w + 2}}" for i in have)
            if "gomap" in have and "go" in have:
                line += f"{fmt_ratio(ratio(per.get('go'), per.get('gomap'))):>11}"
            lines.append(line)
    return lines


def check_targets(rows, sizes):
    """Issue 3's targets, on u64 keys (the issue's figures are u64)."""
    t = []

    def add(name, ok, detail):
        t.append({"target": name, "status": "not measured" if ok is None else ("MET" if ok else "NOT MET"),
                  "detail": detail})

    gomap = next((i for i in ("gomap-swiss", "gomap", "gomap-classic") if any(r["impl"] == i for r in rows)), None)
    have_gomap = gomap is not None
    if not have_gomap:
        add("gomap measured", None, "gomap's driver was not run (map not usable yet)")
        return t
    worst = None
    for n in sizes:
        g, gm = lookup(rows, "go", "u64", n), lookup(rows, gomap, "u64", n)
        if not g or not gm:
            continue
        for p in PHASES:
            s = ratio(g["ns_per_op"][p], gm["ns_per_op"][p])
            if s is not None and (worst is None or s < worst[0]):
                worst = (s, n, p)
    fails = []
    for n in sizes:
        g, gm = lookup(rows, "go", "u64", n), lookup(rows, gomap, "u64", n)
        if g and gm:
            fails += [f"{p}@{fmt_n(n)} {ratio(g['ns_per_op'][p], gm['ns_per_op'][p]):.2f}x"
                      for p in PHASES if ratio(g["ns_per_op"][p], gm["ns_per_op"][p]) < 1.5]
    t.append({"target": "engine judged", "status": gomap, "detail": "the targets below use this row"})
    add("every phase at every size >= 1.5x faster than Go 1.19 (u64)",
        None if worst is None else not fails,
        ("worst: %s at %s, %.2fx" % (worst[2], fmt_n(worst[1]), worst[0]) if worst else "")
        + ("; below 1.5x: " + ", ".join(fails) if fails else "")
        + ("" if 10000000 in sizes else "; 10M not run (--quick)"))
    det, ok = [], True
    measured = False
    for n in (100000, 10000000):
        b, gm = lookup(rows, "boost", "u64", n), lookup(rows, gomap, "u64", n)
        if not b or not gm:
            continue
        measured = True
        for p in ("hit", "miss"):
            r = ratio(gm["ns_per_op"][p], b["ns_per_op"][p])
            det.append(f"{p}@{fmt_n(n)} {r:.2f}x")
            ok = ok and r <= 1.3
    add("lookups (hit, miss) within 1.3x of boost at 100K and 10M (u64)",
        (ok if measured else None), ", ".join(det) + ("" if 10000000 in sizes else "; 10M not run (--quick)"))
    gm = lookup(rows, gomap, "u64", 10000000)
    if gm:
        add("max single insert at 10M < 1 ms", gm["lat_max_ns"] < 1e6, f"{gm['lat_max_ns'] / 1e3:.0f} us")
        add("p99.99 single insert at 10M < 5 us", gm["lat_p9999_ns"] < 5e3, f"{gm['lat_p9999_ns'] / 1e3:.2f} us")
        if gm.get("lat_quiet_max_ns") is not None:
            # what stands in the way of the two above when they fail: the
            # same pass without the inserts the thread was switched out during
            add("  the same, inserts not switched out: max < 1 ms", gm["lat_quiet_max_ns"] < 1e6,
                f"{gm['lat_quiet_max_ns'] / 1e3:.0f} us ({gm['lat_switched']:.0f} inserts switched out)")
            add("  the same, inserts not switched out: p99.99 < 5 us", gm["lat_quiet_p9999_ns"] < 5e3,
                f"{gm['lat_quiet_p9999_ns'] / 1e3:.2f} us")
        g = lookup(rows, "go", "u64", 10000000)
        if g:
            add("memory per entry at 10M u64 no worse than Go 1.19 (RSS delta)",
                gm["rss_bpe"] <= g["rss_bpe"],
                f"gomap {gm['rss_bpe']:.1f} B vs Go {g['rss_bpe']:.1f} B (allocator count: "
                f"gomap {gm['alloc_bpe']:.1f} B, Go live heap {g['alloc_bpe']:.1f} B)")
        gc = lookup(rows, "gomap-classic-gc", "u64", 10000000)
        if gc:
            add("GC maps (gomap-classic-gc): max single insert at 10M < 1 ms", gc["lat_max_ns"] < 1e6,
                f"{gc['lat_max_ns'] / 1e3:.0f} us; inserts not switched out: "
                f"{gc.get('lat_quiet_max_ns', float('nan')) / 1e3:.0f} us")
            add("GC maps (gomap-classic-gc): p99.99 single insert at 10M < 5 us", gc["lat_p9999_ns"] < 5e3,
                f"{gc['lat_p9999_ns'] / 1e3:.2f} us; inserts not switched out: "
                f"{gc.get('lat_quiet_p9999_ns', float('nan')) / 1e3:.2f} us")
    else:
        for name in ("max single insert at 10M < 1 ms", "p99.99 single insert at 10M < 5 us",
                     "memory per entry at 10M u64 no worse than Go 1.19"):
            add(name, None, "10M not run (--quick)")
    return t


def tool_version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except Exception:  # noqa: BLE001 - a version string is only informative
        return "?"


def dpkg_version(pkg):
    return tool_version(["dpkg-query", "-W", "-f=${Version}", pkg])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="folder with drv_<impl>")
    ap.add_argument("--out", required=True)
    ap.add_argument("--docs-svg", default=None, help="also copy the SVG here")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=0, help="runs per size (default 5/5/3, quick 2)")
    ap.add_argument("--impls", default=",".join(ORDER))
    ap.add_argument("--note", default="")
    ap.add_argument("--nice", default="0", help="niceness run.sh started us with (recorded)")
    opts = ap.parse_args()

    impls = [i for i in ORDER if i in opts.impls.split(",")]
    binaries = {i: os.path.join(opts.bin, "drv_" + i) for i in impls}
    for i, b in list(binaries.items()):
        if not os.access(b, os.X_OK):
            log(f"{i}: no driver at {b}; left out")
            impls.remove(i)
    load0 = loadavg()
    t0 = time.time()
    raw, shapes_raw, runs, reps, failed = measure(opts, impls, binaries)
    failures = [{"impl": i, "keys": k, "n": n, "error": e} for (i, k, n), e in failed.items()]
    rows, shapes = aggregate(raw, shapes_raw, impls)
    sizes = sorted(runs)
    lines = print_tables(rows, shapes, impls, sizes, runs)
    targets = check_targets(rows, sizes)
    clk = {i: med([r.get("clock_ns") for r in rows if r["impl"] == i]) for i in impls}
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": opts.quick, "runs": {str(k): v for k, v in runs.items()},
        "reps": {str(k): v for k, v in reps.items()},
        "impls": impls, "host": platform.node(), "cpus": os.cpu_count(),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "loadavg_start": load0, "loadavg_end": loadavg(), "seconds": round(time.time() - t0, 1),
        "clock": "clock_gettime(CLOCK_MONOTONIC) (vDSO) in C; runtime.nanotime in Go (the same clock)",
        "clock_read_ns": clk,
        "versions": {"go": tool_version(["go", "version"]), "gcc": tool_version(["gcc", "--version"]),
                     "boost": dpkg_version("libboost1.81-dev"), "absl": dpkg_version("libabsl-dev"),
                     "khash (htslib)": dpkg_version("libhts-dev")},
        "flags": os.environ.get("BENCH_OPT", "-O2 -DNDEBUG"),
        "note": opts.note, "failures": failures, "nice": opts.nice,
    }
    out = "\n".join(lines)
    print(f"gomap map benchmark - {meta['date']} - {meta['cpus']} CPUs ({meta['cpu']}), "
          f"load average at start {' '.join(load0)}, end {' '.join(meta['loadavg_end'])}")
    print(f"C/C++ flags {meta['flags']}; clock read cost (ns, included once in every latency sample): "
          + ", ".join(f"{i} {v:.0f}" for i, v in clk.items() if v is not None))
    if opts.note:
        print("note: " + opts.note)
    for f in failures:
        print(f"FAILED: {f['impl']} {f['keys']} N={f['n']}: {f['error']}")
    print(out)
    print("")
    print("== Targets (issue 3, u64 keys) ==")
    for t in targets:
        print(f"  [{t['status']:>12}] {t['target']}: {t['detail']}")
    os.makedirs(opts.out, exist_ok=True)
    doc = {"meta": meta, "results": rows, "shapes": shapes, "targets": targets,
           "raw": raw, "shapes_raw": shapes_raw}
    with open(os.path.join(opts.out, "map.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(opts.out, "map.txt"), "w") as f:
        f.write(out + "\n")
    chart = svg.chart(rows, impls, sizes, PHASES, KEYS, meta)
    with open(os.path.join(opts.out, "map.svg"), "w") as f:
        f.write(chart)
    if opts.docs_svg:
        with open(opts.docs_svg, "w") as f:
            f.write(chart)
    log(f"wrote {opts.out}/map.json, map.txt, map.svg" + (f" and {opts.docs_svg}" if opts.docs_svg else ""))


if __name__ == "__main__":
    main()
