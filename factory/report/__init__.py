"""`reprobase report`: a static, self-contained HTML dashboard and results.json.

model    records -> what to show (timeline, sizes, package changes), pure
pkgdiff  package-set changes between two nights, pure
svg      inline SVG charts, pure
pages    HTML pages, pure
jsondoc  results.json, pure
trustview / pagestrust  SBOMs, provenance, rebuilders, quorum gates, watched images, pure
trustlog the history's attestations and gates tables
here     write_report: the only function that touches the file system
"""

from __future__ import annotations

import os
from pathlib import Path

from factory.common import outputs
from factory.common.canonical import canonical_json
from factory.report import derivedview, jsondoc, model, pages, trustview
from factory.report.history import History


def render(
    history: History, *, title: str = "reprobase", generated: str | None = None
) -> dict[str, bytes]:
    """Every file of the report: relative path -> bytes (deterministic for a history)."""
    records = history.records()
    attestations, gates = history.attestations(), history.gates()
    summary, views = model.build(records, attestations, gates)
    watched = trustview.watch_views(records, attestations)
    derived = derivedview.derived_section(derivedview.derived_views(records))
    index = pages.index_page(
        summary, views, title=title, generated=generated, watched=watched, derived=derived
    )
    doc = jsondoc.document(
        records, summary, views, title=title, generated=generated, watched=watched,
        attestations=attestations, gates=gates,
    )  # fmt: skip
    files: dict[str, bytes] = {
        "index.html": index.encode(),
        "results.json": canonical_json(doc),
    }
    for view in views:
        page = pages.image_page(view, title=title, generated=generated)
        files[f"images/{view.slug}.html"] = page.encode()
    return files


def write_report(
    history: History,
    out_dir: Path,
    *,
    title: str = "reprobase",
    generated: str | None = None,
    force: bool = False,
) -> Path:
    """Write index.html, results.json and images/*.html into out_dir; return index.html.

    The new report is assembled next to out_dir and swapped in, so a web server
    serving out_dir never shows half a report; out_dir must be absent, empty or an
    earlier report (factory.common.outputs: a directory we did not write is refused).
    """
    files = render(history, title=title, generated=generated)
    out_dir = out_dir.absolute()
    with outputs.replacing(out_dir, outputs.OutputKind.REPORT, force=force) as staging:
        for rel, data in sorted(files.items()):
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        os.chmod(staging, 0o755)
        for sub in staging.rglob("*"):
            os.chmod(sub, 0o755 if sub.is_dir() else 0o644)
    return out_dir / "index.html"


__all__ = ["render", "write_report"]
