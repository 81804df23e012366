"""Inline SVG charts: the verdict timeline strip and the size-over-time chart.

Plain SVG with <title> tooltips: no script, no external assets, readable offline.
Coordinates are rounded to one decimal so the output is stable text.
"""

from __future__ import annotations

from collections.abc import Sequence

from factory.report.fmt import esc, short_digest, short_label, size, snapshot_label
from factory.report.model import Cell, SizePoint, Timeline

VERDICT_COLOURS: dict[str, str] = {
    "reproducible": "#2e9d4a",
    "unchanged": "#a3a9b1",
    "differs": "#d33a3a",
    "error": "#f0a400",
    "not-verified": "#7ea6d6",
}
EMPTY_COLOUR = "#eceff3"
ARCH_COLOURS = ("#3867d6", "#8e44ad", "#16a085", "#e67e22", "#2c3e50", "#c0392b")

CELL_W, CELL_H, GAP, LABEL_W, AXIS_H = 18, 24, 3, 68, 18
MAX_WIDTH = 1080  # the card's inner width: the newest nights must never scroll away


def _n(x: float) -> str:
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def arch_colour(arches: Sequence[str], arch: str) -> str:
    return ARCH_COLOURS[sorted(arches).index(arch) % len(ARCH_COLOURS)]


def cell_title(cell: Cell) -> str:
    lines = [f"{cell.arch} · {snapshot_label(cell.snapshot)} · {cell.verdict or 'no result'}"]
    rec = cell.record
    if rec is not None:
        if rec.manifest_digest:
            lines.append(f"manifest {short_digest(rec.manifest_digest)}")
        if rec.size is not None:
            lines.append(f"layer {size(rec.size)}")
        if rec.message:
            lines.append(rec.message)
    for rv in cell.reverify:
        lines.append(f"re-verified {rv.started}: {rv.verdict}")
    return "\n".join(lines)


def _cell(cell: Cell, x: float, y: float, w: float) -> str:
    fill = VERDICT_COLOURS.get(cell.verdict or "", EMPTY_COLOUR)
    parts = [
        f"<g><title>{esc(cell_title(cell))}</title>"
        f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{CELL_H}" rx="{_n(min(3, w / 3))}" '
        f'fill="{fill}"/>'
    ]
    if cell.reverify:
        dot = VERDICT_COLOURS.get(cell.reverify[0].verdict, EMPTY_COLOUR)
        parts.append(
            f'<circle cx="{_n(x + w / 2)}" cy="{_n(y + CELL_H - 5)}" r="{_n(min(3.2, w / 2.5))}" '
            f'fill="{dot}" stroke="#fff" stroke-width="1.5"/>'
        )
    parts.append("</g>")
    return "".join(parts)


def timeline_svg(tl: Timeline, *, label: str) -> str:
    """One row per architecture, one cell per night, newest on the right."""
    n = len(tl.snapshots)
    # Long strips get narrower cells rather than a scroll bar.
    pitch = min(CELL_W + GAP, (MAX_WIDTH - LABEL_W) // max(n, 1))
    w = pitch - (GAP if pitch > 12 else 2)
    width = LABEL_W + n * pitch
    height = len(tl.arches) * (CELL_H + GAP) + AXIS_H
    out = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{esc(label)}">'
    ]
    for row_i, (arch, row) in enumerate(zip(tl.arches, tl.rows, strict=True)):
        y = row_i * (CELL_H + GAP)
        out.append(f'<text x="0" y="{_n(y + CELL_H / 2 + 4)}" class="axis arch">{esc(arch)}</text>')
        out.extend(_cell(cell, LABEL_W + i * pitch, y, w) for i, cell in enumerate(row))
    axis_y = len(tl.arches) * (CELL_H + GAP) + 12
    for i in range(n - 1, -1, -7):  # a date under every 7th night, counted from the newest
        x = LABEL_W + i * pitch + w
        out.append(
            f'<text x="{_n(x)}" y="{axis_y}" text-anchor="end" class="axis">'
            f"{esc(short_label(tl.snapshots[i]))}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _range(values: Sequence[int]) -> tuple[float, float]:
    lo, hi = float(min(values)), float(max(values))
    pad = (hi - lo) * 0.12 if hi > lo else max(hi * 0.05, 1.0)
    return max(lo - pad, 0.0), hi + pad


def size_chart_svg(
    series: Sequence[tuple[str, Sequence[SizePoint]]], *, uncompressed: bool, label: str
) -> str:
    """Layer size per night, one line per architecture."""
    width, height, left, right, top, bottom = 520, 190, 64, 14, 14, 26
    pts = {
        arch: [
            (p.snapshot, p.uncompressed if uncompressed else p.size)
            for p in points
            if (p.uncompressed if uncompressed else p.size) is not None
        ]
        for arch, points in series
    }
    snaps = sorted({s for values in pts.values() for s, _ in values})
    values = [v for vals in pts.values() for _, v in vals if v is not None]
    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}">'
    ]
    if not values:
        out.append(f'<text x="{left}" y="{height // 2}" class="axis">no data</text></svg>')
        return "".join(out)
    lo, hi = _range(values)
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(snap: str, v: float) -> tuple[float, float]:
        i = snaps.index(snap)
        x = left + (plot_w * i / (len(snaps) - 1) if len(snaps) > 1 else plot_w / 2)
        return x, top + plot_h * (1 - (v - lo) / (hi - lo))

    for k in range(5):  # four bands with their sizes at the left
        v = lo + (hi - lo) * k / 4
        _, y = xy(snaps[0], v)
        out.append(
            f'<line x1="{left}" y1="{_n(y)}" x2="{width - right}" y2="{_n(y)}" class="grid"/>'
            f'<text x="{left - 6}" y="{_n(y + 4)}" text-anchor="end" class="axis">'
            f"{esc(size(round(v)))}</text>"
        )
    for i in sorted({0, len(snaps) // 2, len(snaps) - 1}):
        x, _ = xy(snaps[i], lo)
        anchor = "middle"
        if len(snaps) > 1 and i in (0, len(snaps) - 1):
            anchor = "start" if i == 0 else "end"
        out.append(
            f'<text x="{_n(x)}" y="{height - 8}" text-anchor="{anchor}" class="axis">'
            f"{esc(snapshot_label(snaps[i]))}</text>"
        )
    arches = [a for a, _ in series]
    for arch, vals in sorted(pts.items()):
        colour = arch_colour(arches, arch)
        coords = [xy(s, v) for s, v in vals if v is not None]
        line = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
        out.append(
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2" '
            'stroke-linejoin="round"/>'
        )
        for (snap, value), (x, y) in zip(vals, coords, strict=True):
            out.append(
                f'<circle cx="{_n(x)}" cy="{_n(y)}" r="2.6" fill="{colour}"><title>'
                f"{esc(f'{arch} · {snapshot_label(snap)} · {size(value)}')}</title></circle>"
            )
    out.append("</svg>")
    return "".join(out)
