"""Derived images on the report: a row per image with its latest build, the base it was
built FROM (by digest), where it was published and its latest re-verification.

Pure: history records in, a view and its HTML out. The rows are kinds "derived" and
"derived-reverify" (factory.nightly.derived); the base images' cards never show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from factory.report.fmt import NONE_HTML, digest_html, esc, snapshot_label
from factory.report.history import ResultRecord

KINDS = ("derived", "derived-reverify")


@dataclass(frozen=True)
class DerivedView:
    image: str  # NAME:TAG
    latest: tuple[ResultRecord, ...]  # the newest build, one row per architecture
    reverified: ResultRecord | None  # the newest re-verification
    published: ResultRecord | None  # the newest build that was published

    @property
    def base_digest(self) -> str | None:
        return next((r.base_digest for r in self.latest if r.base_digest), None)


def _key(r: ResultRecord) -> tuple[str, str, str, str]:
    return (r.started, r.finished, r.run_id, r.arch)


def derived_views(records: Sequence[ResultRecord]) -> tuple[DerivedView, ...]:
    by_image: dict[str, list[ResultRecord]] = {}
    for r in records:
        if r.kind in KINDS:
            by_image.setdefault(r.image, []).append(r)
    views = []
    for image in sorted(by_image):
        recs = sorted(by_image[image], key=_key, reverse=True)
        builds = [r for r in recs if r.kind == "derived"]
        newest_run = builds[0].run_id if builds else None
        views.append(
            DerivedView(
                image,
                tuple(sorted((r for r in builds if r.run_id == newest_run), key=lambda r: r.arch)),
                next((r for r in recs if r.kind == "derived-reverify"), None),
                next((r for r in builds if r.publishable and r.published), None),
            )
        )
    return tuple(views)


def _badge(r: ResultRecord | None) -> str:
    if r is None:
        return NONE_HTML
    return (
        f'<span class="badge v-{esc(r.verdict)}">{esc(r.verdict)}</span> '
        f'<span class="muted">{esc(snapshot_label(r.snapshot))}</span>'
    )


def derived_section(views: Sequence[DerivedView]) -> str:
    if not views:
        return ""
    head = (
        "<tr><th>image</th><th>arch</th><th>latest</th><th>index</th><th>FROM (base digest)</th>"
        "<th>published</th><th>re-verified</th><th>message</th></tr>"
    )
    rows = []
    for v in views:
        for r in v.latest:
            pub = v.published
            refs = "<br>".join(f"<code>{esc(p)}</code>" for p in pub.published[:1]) if pub else ""
            first = r.message.splitlines()[0] if r.message else ""
            rows.append(
                f"<tr><td><code>{esc(v.image)}</code></td><td>{esc(r.arch)}</td>"
                f"<td>{_badge(r)}</td><td>{digest_html(r.index_digest)}</td>"
                f'<td class="base-digest">{digest_html(r.base_digest)}</td>'
                f"<td>{refs or _badge(None)}</td><td>{_badge(v.reverified)}</td>"
                f'<td class="msg">{esc(first)}</td></tr>'
            )
    return (
        '<section class="card" id="derived"><div class="card-head"><h2>Derived images</h2>'
        '<span class="rate">Containerfiles FROM our images, rebuilt every night on that '
        "night's base and published when both builds agree</span></div>"
        f'<div class="scroll"><table>{head}{"".join(rows)}</table></div></section>'
    )
