"""HTML pages of the report (pure: strings in, strings out).

Every value that comes from the history goes through `esc`, in text and attributes.
Pages are self-contained: inline CSS and SVG, no script, no external assets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from factory.report.fmt import (
    DASH,
    MINUS,
    digest_html,
    esc,
    percent,
    seconds,
    size,
    snapshot_label,
)
from factory.report.history import ResultRecord
from factory.report.model import INDEX_NIGHTS, ChangeSet, Counts, ImageView, Latest, Summary
from factory.report.pagestrust import trust_block, watched_section
from factory.report.pkgdiff import PackageChange
from factory.report.style import stylesheet
from factory.report.svg import VERDICT_COLOURS, arch_colour, size_chart_svg, timeline_svg
from factory.report.trustview import WatchView
from factory.source.origin import Origin

TAGLINE = (
    "Debian base images built twice in different environments from a pinned timestamp "
    "(snapshot.debian.org, or the build machine's Debian mirror recorded under it when "
    "snapshot cannot be reached: each image's labels say which), and published only "
    "when both builds agree bit for bit."
)
CHANGE_MARKS = {"added": "+", "removed": MINUS, "upgraded": "↑", "downgraded": "↓"}


def _doc(title: str, heading: str, body: Iterable[str], *, home: str, generated: str | None) -> str:
    foot = f" Generated {esc(generated)}." if generated else ""
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title><style>{stylesheet()}</style></head><body>",
            f'<header class="top"><div class="inner"><h1>{heading}</h1>',
            f"<p>{esc(TAGLINE)}</p></div></header><main>",
            *body,
            f'<footer>Data: <a href="{esc(home)}results.json">results.json</a> '
            f"(every result in the history).{foot}</footer>",
            "</main></body></html>\n",
        ]
    )


def badge(verdict: str | None) -> str:
    if verdict is None:
        return '<span class="badge plain">no result</span>'
    return f'<span class="badge v-{esc(verdict)}">{esc(verdict)}</span>'


def legend(*, reverify: bool = True) -> str:
    items = [
        f'<span><span class="sw" style="background:{c}"></span>{esc(v)}</span>'
        for v, c in VERDICT_COLOURS.items()
    ]
    if reverify:
        items.append('<span><span class="dot" style="background:#2e9d4a"></span>re-verified</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def counts_line(counts: Counts) -> str:
    chips = [
        f'<span class="badge v-{esc(v)}">{n} {esc(v)}</span>' for v, n in counts.by_verdict if n
    ]
    return " ".join(chips) if chips else '<span class="muted">no results</span>'


def tiles(summary: Summary) -> str:
    last = summary.last_run
    last_v = esc(last.finished) if last else DASH
    last_s = f"run {esc(last.run_id)}" if last else "no runs yet"
    return (
        '<section class="tiles">'
        f'<div class="tile"><div class="k">Images</div><div class="v">{summary.images}</div>'
        f'<div class="s">{summary.counts.total} results, {esc(summary.counts.span)}</div></div>'
        f'<div class="tile"><div class="k">Reproducible, {esc(summary.counts.span)}</div>'
        f'<div class="v">{esc(percent(summary.counts.rate))}</div>'
        f'<div class="s">{esc(summary.window)}</div></div>'
        f'<div class="tile"><div class="k">Results, {esc(summary.counts.span)}</div>'
        f'<div class="s" style="margin-top:8px">{counts_line(summary.counts)}</div></div>'
        f'<div class="tile"><div class="k">Last run</div><div class="s" style="margin-top:6px;'
        f'font-size:15px;color:#1d2330">{last_v}</div><div class="s">{last_s}</div></div>'
        "</section>"
    )


def durations(d: dict[str, float]) -> str:
    if not d:
        return DASH
    return " · ".join(f"{esc(k)} {esc(seconds(v))}" for k, v in sorted(d.items()))


def origin_label(value: str) -> str:
    try:
        return Origin(value).label
    except ValueError:
        return value  # a newer reprobase's origin: say what it says


def latest_block(latest: Latest, *, full: bool) -> str:
    rec = latest.record
    facts: list[tuple[str, str]] = [
        ("snapshot", f"{esc(snapshot_label(rec.snapshot))} {badge(rec.verdict)}"),
        ("index", digest_html(rec.index_digest, full=full)),
        ("manifest A", digest_html(rec.manifest_digest, full=full)),
        ("manifest B", digest_html(rec.digest_b, full=full)),
        ("layer", f"{esc(size(rec.size))} ({esc(size(rec.uncompressed_size))} unpacked)"),
        ("packages", str(len(rec.packages)) if rec.packages else DASH),
        ("upstream", DASH if rec.upstream_bytes is None else f"{size(rec.upstream_bytes)} fetched"),
        ("durations", durations(rec.durations)),
    ]
    if rec.packages_from is not None:  # unknown in histories from before schema 2
        facts.append(("packages from", esc(origin_label(rec.packages_from))))
    if rec.message:
        facts.append(("message", f'<span class="msg">{esc(rec.message)}</span>'))
    pub = latest.published
    if pub is not None:
        refs = "<br>".join(f"<code>{esc(r)}</code>" for r in pub.published)
        facts.append(("published", f"{esc(snapshot_label(pub.snapshot))}<br>{refs}"))
    else:
        facts.append(("published", '<span class="muted">nothing yet</span>'))
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return (
        f'<div><h3 style="margin-top:0">{esc(latest.arch)}</h3><dl class="facts">{rows}</dl></div>'
    )


def change_item(c: PackageChange) -> str:
    kind = c.kind
    if kind == "added":
        text = f"<b>{esc(c.name)}</b> {esc(c.new)}"
    elif kind == "removed":
        text = f"<b>{esc(c.name)}</b> {esc(c.old)}"
    else:
        text = f"<b>{esc(c.name)}</b> {esc(c.old)} → {esc(c.new)}"
    mark = f'<span class="ck {kind}" title="{kind}">{CHANGE_MARKS[kind]}</span>'
    return f'<li class="{kind}">{mark}{text}</li>'


def changes_block(sets: Sequence[ChangeSet], limit: int, more_href: str = "") -> str:
    if not sets:
        return '<p class="muted">No package-set changes recorded.</p>'
    rows = []
    for cs in sets[:limit]:
        rows.append(
            f'<div class="when"><b>{esc(snapshot_label(cs.snapshot))}</b><br>'
            f"since {esc(snapshot_label(cs.previous))}<br>{esc(', '.join(cs.arches))}</div>"
            f"<ul>{''.join(change_item(c) for c in cs.changes)}</ul>"
        )
    more = ""
    if len(sets) > limit:
        earlier = f"{len(sets) - limit} earlier change sets"
        if more_href:
            earlier = f'<a href="{esc(more_href)}">{earlier}</a>'
        more = f'<p class="muted">{earlier} not shown.</p>'
    return f'<div class="changes">{"".join(rows)}</div>{more}'


def size_charts(view: ImageView) -> str:
    arches = [a for a, _ in view.sizes]
    key = " ".join(
        f'<span><span class="sw" style="background:{arch_colour(arches, a)}"></span>{esc(a)}</span>'
        for a in arches
    )
    charts = "".join(
        f"<figure><figcaption>{cap}</figcaption>"
        f"{size_chart_svg(view.sizes, uncompressed=unc, label=f'{view.image} {cap}')}</figure>"
        for cap, unc in (("compressed layer", False), ("uncompressed", True))
    )
    return f'<div class="legend">{key}</div><div class="charts">{charts}</div>'


def runs_table(records: Sequence[ResultRecord]) -> str:
    head = (
        "<tr><th>snapshot</th><th>arch</th><th>kind</th><th>verdict</th><th>manifest</th>"
        '<th class="num">layer</th><th class="num">upstream</th><th class="num">time</th>'
        "<th>run</th><th>message</th></tr>"
    )
    rows = [
        f'<tr><td class="nw">{esc(snapshot_label(r.snapshot))}</td><td>{esc(r.arch)}</td>'
        f"<td>{esc(r.kind)}</td><td>{badge(r.verdict)}</td>"
        f"<td>{digest_html(r.manifest_digest, full=False)}</td>"
        f'<td class="num">{esc(size(r.size))}</td>'
        f'<td class="num">{esc(size(r.upstream_bytes))}</td>'
        f'<td class="num" title="{durations(r.durations)}">'
        f"{esc(seconds(sum(r.durations.values()) if r.durations else None))}</td>"
        f'<td class="mono nw">{esc(r.run_id)}</td><td class="msg">{esc(r.message)}</td></tr>'
        for r in records
    ]
    return f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'


def image_section(view: ImageView, *, overview: bool) -> str:
    tl = view.timeline.last(INDEX_NIGHTS) if overview else view.timeline
    head_badges = " ".join(
        f'<span class="badge plain">{esc(lt.arch)}</span>{badge(lt.record.verdict)}'
        for lt in view.latest
    )
    title = (
        f'<a href="images/{esc(view.slug)}.html">{esc(view.image)}</a>'
        if overview
        else esc(view.image)
    )
    more = (
        f'<a class="more" href="images/{esc(view.slug)}.html">full history →</a>'
        if overview
        else ""
    )
    latest = "".join(latest_block(lt, full=not overview) for lt in view.latest)
    parts = [
        f'<section class="card" id="{esc(view.slug)}"><div class="card-head"><h2>{title}</h2>',
        f"<div>{head_badges}</div>",
        f'<span class="rate">{esc(percent(view.counts.rate))} reproducible, '
        f"{esc(view.counts.span)}</span>",
        f"{more}</div>",
        f"<h3>Reproducibility, last {len(tl.snapshots)} "
        f"night{'' if len(tl.snapshots) == 1 else 's'}</h3>",
        f'<div class="scroll">{timeline_svg(tl, label=f"{view.image} verdicts per night")}</div>',
        f'<h3>Latest</h3><div class="latest">{latest}</div>',
        "<h3>Trust: SBOMs, provenance, rebuilders</h3>",
        trust_block(view.trust, full=not overview),
        f"<h3>Sizes</h3>{size_charts(view)}",
        "<h3>Package changes</h3>",
        changes_block(
            view.changes,
            3 if overview else len(view.changes),
            f"images/{view.slug}.html" if overview else "",
        ),
    ]
    if not overview:
        parts.append(
            f"<h3>Results, {esc(view.counts.span)}</h3><div>{counts_line(view.counts)}</div>"
        )
        parts.append(f"<h3>Runs</h3>{runs_table(view.recent)}")
    parts.append("</section>")
    return "".join(parts)


def index_page(
    summary: Summary,
    views: Sequence[ImageView],
    *,
    title: str,
    generated: str | None,
    watched: Sequence[WatchView] = (),
    derived: str = "",  # factory.report.derivedview's section
) -> str:
    body = [tiles(summary), legend()]
    body.extend(image_section(v, overview=True) for v in views)
    body.append(watched_section(watched))
    body.append(derived)
    if not views:
        body.append(
            '<section class="card"><p class="muted">The history is empty: no nightly '
            "has recorded a result yet.</p></section>"
        )
    return _doc(title, esc(title), body, home="", generated=generated)


def image_page(view: ImageView, *, title: str, generated: str | None) -> str:
    heading = f'<a href="../index.html">{esc(title)}</a> / {esc(view.image)}'
    body = [legend(), image_section(view, overview=False)]
    return _doc(f"{view.image} {DASH} {title}", heading, body, home="../", generated=generated)


__all__ = ["image_page", "index_page"]
