"""svg.py - the benchmark chart as a standalone SVG, written by hand (no
plotting library): one panel per key type and size, five phase groups per
panel, one bar per implementation, ns/op on a linear axis per panel."""
import math
from xml.sax.saxutils import escape

COLORS = {"gomap": "#e4572e", "gomap-swiss": "#e4572e", "gomap-classic": "#f2a541", "gomap-classic-gc": "#c9802b", "go": "#00add8", "boost": "#59a14f", "absl": "#b07aa1", "khash": "#9c9c9c"}
PW, PH = 470, 300           # panel size
ML, MR, MT, MB = 48, 10, 34, 40   # margins inside a panel


def nice_max(v):
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def fmt_axis(v):
    return f"{v:.0f}" if v == int(v) else f"{v:g}"


def fmt(v):
    return f"{v:.0f}" if v >= 100 else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def panel(x0, y0, title, rows, impls, phases):
    out = [f'<g transform="translate({x0},{y0})">',
           f'<text x="{PW / 2}" y="18" text-anchor="middle" class="pt">{escape(title)}</text>']
    vals = [r["ns_per_op"][p] for r in rows.values() for p in phases if r and r["ns_per_op"][p] is not None]
    top = nice_max(max(vals) if vals else 1)
    pw, ph = PW - ML - MR, PH - MT - MB
    for i in range(6):
        v = top * i / 5
        y = MT + ph - ph * i / 5
        out.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{ML + pw}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{ML - 4}" y="{y + 3:.1f}" text-anchor="end" class="ax">{fmt_axis(v)}</text>')
    out.append(f'<text x="12" y="{MT + ph / 2}" transform="rotate(-90 12 {MT + ph / 2})" '
               f'text-anchor="middle" class="ax">ns/op</text>')
    gw = pw / len(phases)
    bw = gw * 0.8 / max(1, len(impls))
    for gi, p in enumerate(phases):
        gx = ML + gi * gw + gw * 0.1
        out.append(f'<text x="{ML + gi * gw + gw / 2:.1f}" y="{MT + ph + 16}" text-anchor="middle" class="ph">{p}</text>')
        for bi, impl in enumerate(impls):
            r = rows.get(impl)
            v = r["ns_per_op"][p] if r else None
            if v is None:
                continue
            h = ph * min(v, top) / top
            x = gx + bi * bw
            y = MT + ph - h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" '
                       f'fill="{COLORS.get(impl, "#333")}"><title>{impl} {p}: {fmt(v)} ns/op</title></rect>')
            if bw >= 9:
                out.append(f'<text x="{x + bw / 2:.1f}" y="{y - 2:.1f}" transform="rotate(-90 {x + bw / 2:.1f} {y - 2:.1f})" '
                           f'class="val">{fmt(v)}</text>')
    out.append(f'<line x1="{ML}" y1="{MT + ph}" x2="{ML + pw}" y2="{MT + ph}" class="axis"/>')
    out.append("</g>")
    return out


def chart(rows, impls, sizes, phases, keys_kinds, meta):
    label = {"u64": "u64 \u2192 u64", "str": "16-byte string \u2192 u64"}
    nsz = {1000: "1K", 100000: "100K", 10000000: "10M"}
    quick = " \u00b7 --quick" if meta.get("quick") else ""
    W = PW * len(sizes) + 20
    H = PH * len(keys_kinds) + 90
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           f'font-family="Helvetica, Arial, sans-serif">',
           "<style>.pt{font-size:14px;font-weight:bold}.ax{font-size:10px;fill:#555}"
           ".ph{font-size:11px}.val{font-size:8px;fill:#333}.grid{stroke:#e5e5e5}"
           ".axis{stroke:#333}.lg{font-size:12px}.sub{font-size:11px;fill:#555}</style>",
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="10" y="20" style="font-size:16px;font-weight:bold">Map workload W: ns per operation '
           f'(lower is better), median of runs</text>',
           f'<text x="10" y="37" class="sub">{escape(meta.get("date", ""))} \u00b7 {meta.get("cpus")} CPUs, '
           f'load {escape(" ".join(meta.get("loadavg_start", [])))} (shared machine) \u00b7 '
           f'{escape(meta.get("flags", ""))} \u00b7 Go {escape(meta.get("versions", {}).get("go", "").replace("go version ", ""))}'
           f'{quick}</text>']
    lx = 10
    for impl in impls:
        out.append(f'<rect x="{lx}" y="48" width="12" height="12" fill="{COLORS.get(impl, "#333")}"/>')
        out.append(f'<text x="{lx + 16}" y="58" class="lg">{escape(impl)}</text>')
        lx += 30 + 8 * len(impl)
    for ki, k in enumerate(keys_kinds):
        for si, n in enumerate(sizes):
            per = {r["impl"]: r for r in rows if r["keys"] == k and r["n"] == n}
            out += panel(10 + si * PW, 70 + ki * PH, f"{label[k]}, N = {nsz.get(n, n)}", per, impls, phases)
    out.append("</svg>")
    return "\n".join(out) + "\n"
