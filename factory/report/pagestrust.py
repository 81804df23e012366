"""HTML of the trust parts (pure): an image's SBOMs, provenance, rebuilders and quorum
gate; the watched images' record. Every history value goes through `esc`."""

from __future__ import annotations

from collections.abc import Sequence

from factory.report.fmt import DASH, NONE_HTML, digest_html, esc, snapshot_label
from factory.report.trustlog import AttestationRecord, GateRecord
from factory.report.trustview import TrustView, WatchRun, WatchView

OUTCOME_BADGE = {"identical": "reproducible", "differs": "differs", "other image": "error"}


def _outcome(outcome: str | None) -> str:
    if outcome is None:
        return NONE_HTML
    return f'<span class="badge v-{esc(OUTCOME_BADGE.get(outcome, "error"))}">{esc(outcome)}</span>'


def rebuilder(a: AttestationRecord, *, full: bool) -> str:
    who = esc(a.signer) if a.signer else "unknown key"
    key = f"key {digest_html(a.keyid, full=full)}" if a.keyid else "unsigned"
    check = "signature checked" if a.checked else "signature not checked (key not trusted here)"
    when = f", rebuilt {esc(a.rebuilt_on)}" if a.rebuilt_on else ""
    note = f"<span class='muted'>{check}{when}</span>"
    return f"<li><b>{who}</b> {_outcome(a.outcome)} {key} {note}</li>"


def rebuilders_list(rows: Sequence[AttestationRecord], *, full: bool) -> str:
    if not rows:
        return '<span class="muted">no rebuilder has attested it yet</span>'
    return f'<ul class="plain">{"".join(rebuilder(a, full=full) for a in rows)}</ul>'


def gate_line(g: GateRecord) -> str:
    state = (
        '<span class="badge v-reproducible">published</span>'
        if g.passed
        else '<span class="badge v-differs">held</span>'
    )
    parts = [f"{state} {len(g.identical)} of {g.required} required trusted keys"]
    if g.identical:
        parts.append(f"identical: {esc(', '.join(g.identical))}")
    if g.disagreeing:
        parts.append(f"disagree: {esc(', '.join(g.disagreeing))}")
    if g.missing:
        parts.append(f"missing: {esc(', '.join(g.missing))}")
    if g.promoted:
        parts.append("moving tag: " + ", ".join(f"<code>{esc(p)}</code>" for p in g.promoted))
    return f"{'; '.join(parts)} <span class='muted'>({esc(g.decided)})</span>"


def trust_block(t: TrustView | None, *, full: bool) -> str:
    if t is None:
        return '<p class="muted">Nothing published yet.</p>'
    sboms = (
        "<br>".join(
            f"{esc(a.kind.removeprefix('sbom-'))} {esc(a.platform or '')} "
            f"{digest_html(a.artifact, full=full)}"
            for a in t.sboms
        )
        or f'<span class="muted">{DASH} none attached</span>'
    )
    prov = (
        "<br>".join(digest_html(a.artifact, full=full) for a in t.provenance)
        or f'<span class="muted">{DASH} none attached</span>'
    )
    facts = [
        ("image", f"{digest_html(t.index_digest, full=full)} ({esc(snapshot_label(t.snapshot))})"),
        ("SBOMs", sboms),
        ("provenance", prov),
        ("rebuilders", rebuilders_list(t.rebuilders, full=full)),
    ]
    if t.gate is not None:
        facts.append(("quorum", gate_line(t.gate)))
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    hint = (
        '<p class="muted">Read them with <code>reprobase sbom REF</code> and '
        "<code>reprobase verify REF --trust DIR --require N</code>.</p>"
    )
    return f'<dl class="facts">{rows}</dl>{hint}'


def _run_cell(run: WatchRun | None) -> str:
    if run is None:
        return f'<span class="muted">{DASH}</span>'
    snap = f" ({esc(snapshot_label(run.snapshot))})" if run.snapshot else ""
    return f"{esc(run.started)}{snap}"


def watched_section(views: Sequence[WatchView]) -> str:
    if not views:
        return ""
    head = (
        "<tr><th>image</th><th>latest</th><th>reproducible since</th><th>last failure</th>"
        "<th>culprit named by the diff</th><th>rebuilders</th><th>last runs</th></tr>"
    )
    rows = []
    for v in views:
        latest = v.latest
        trail = " ".join(
            f'<span class="badge v-{esc(r.verdict)}" title="{esc(r.started)}">'
            f"{esc(r.verdict[:1])}</span>"
            for r in v.runs[:14]
        )
        fail = _run_cell(v.last_failure)
        if v.last_failure is not None:
            first = v.last_failure.message.splitlines()[0] if v.last_failure.message else ""
            fail += f'<br><span class="msg">{esc(first)}</span>'
        culprit = (
            f'<span class="msg">{esc(v.culprit.culprit)}</span><br>'
            f'<span class="muted">{esc(v.culprit.started)}</span>'
            if v.culprit is not None and v.culprit.culprit
            else f'<span class="muted">{DASH}</span>'
        )
        rows.append(
            f"<tr><td><code>{esc(v.ref)}</code><br>{digest_html(latest.index_digest)}</td>"
            f'<td><span class="badge v-{esc(latest.verdict)}">{esc(latest.verdict)}</span><br>'
            f"{_run_cell(latest)}</td><td>{_run_cell(v.reproducible_since)}</td>"
            f"<td>{fail}</td><td>{culprit}</td>"
            f"<td>{rebuilders_list(v.rebuilders, full=False)}</td><td>{trail}</td></tr>"
        )
    return (
        '<section class="card" id="watched"><div class="card-head"><h2>Watched images</h2>'
        '<span class="rate">built elsewhere, rebuilt here every night from their own labels'
        f'</span></div><div class="scroll"><table>{head}{"".join(rows)}</table></div></section>'
    )
