#!/usr/bin/env python3
"""Plots a soak CSV (seconds, edge/agent RSS and fds) as an SVG, with no dependencies, and
prints how the last tenth of the run compares with the first tenth after warm-up."""
import csv
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "soak.csv"
dst = sys.argv[2] if len(sys.argv) > 2 else src.rsplit(".", 1)[0] + ".svg"
rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(src))]
if len(rows) < 2:
    sys.exit(f"{src}: not enough samples")
series = ["edge_rss_kib", "agent_rss_kib", "edge_fds", "agent_fds"]
colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
W, H, PAD = 900, 240, 50
t_max = rows[-1]["seconds"] or 1
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H * len(series)}" font-family="sans-serif" font-size="12">']
for i, (name, color) in enumerate(zip(series, colors)):
    top = i * H
    values = [r[name] for r in rows]
    v_max = max(values) * 1.1 or 1
    points = " ".join(
        f'{PAD + (r["seconds"] / t_max) * (W - 2 * PAD):.1f},{top + H - PAD - (r[name] / v_max) * (H - 2 * PAD):.1f}'
        for r in rows
    )
    parts.append(f'<text x="{PAD}" y="{top + 20}">{name} (max {max(values):.0f}) over {t_max:.0f} s</text>')
    parts.append(f'<line x1="{PAD}" y1="{top + H - PAD}" x2="{W - PAD}" y2="{top + H - PAD}" stroke="#999"/>')
    parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
parts.append("</svg>")
open(dst, "w").write("\n".join(parts))

tenth = max(1, len(rows) // 10)
early, late = rows[tenth : 2 * tenth] or rows[:1], rows[-tenth:]
for name in series:
    a = sum(r[name] for r in early) / len(early)
    b = sum(r[name] for r in late) / len(late)
    print(f"{name}: {a:.0f} early -> {b:.0f} late ({(b / a - 1) * 100 if a else 0:+.1f}%)")
print(f"plot: {dst}")
