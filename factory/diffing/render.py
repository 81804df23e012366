"""Printing a DiffReport for people: a summary first, then each place that differs."""

from __future__ import annotations

import json

from factory.diffing.model import Difference, DiffKind, DiffReport, Level, Value

MAX_SUMMARY_ITEMS = 8


def fmt(v: Value) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False) if v == "" or v.strip() != v else v
    return str(v)


def groups(report: DiffReport) -> dict[str, list[Difference]]:
    out: dict[str, list[Difference]] = {}
    for d in report.differences:
        out.setdefault(d.where, []).append(d)
    return out


def _items(diffs: list[Difference]) -> list[str]:
    fields: dict[str, list[str]] = {}
    for d in diffs:
        label = d.field or (d.kind.value if d.kind is not DiffKind.CHANGED else "")
        labels = fields.setdefault(d.subject, [])
        if label and label not in labels:
            labels.append(label)
    return [f"{s} ({', '.join(f)})" if f else s for s, f in fields.items()]


def render_ignored(report: DiffReport) -> list[str]:
    if not report.ignored:
        return []
    parts = [f"{g.count} x {g.category.value}" for g in report.ignored]
    return ["ignored as harmless (--semantic): " + ", ".join(parts)]


def render_summary(report: DiffReport) -> str:
    if report.identical:
        head = f"{report.a} and {report.b} are identical"
        if report.semantic:
            head += " (semantically)"
        return "\n".join([head, *render_ignored(report)])
    n = len(report.differences) + report.truncated
    level = report.levels[0].value if report.levels else Level.FILE.value
    lines = [
        f"{report.a} and {report.b} differ: {n} difference{'s' if n != 1 else ''}, "
        f"first at the {level} level"
    ]
    for where, diffs in groups(report).items():
        items = _items(diffs)
        more = len(items) - MAX_SUMMARY_ITEMS
        text = ", ".join(items[:MAX_SUMMARY_ITEMS]) + (f", and {more} more" if more > 0 else "")
        lines.append(f"  {where}: {text}")
    return "\n".join([*lines, *render_ignored(report)])


def render_difference(d: Difference) -> list[str]:
    if d.kind is DiffKind.ADDED:
        line = f"+ {d.subject}  only in B" + (f": {fmt(d.b)}" if d.b is not None else "")
    elif d.kind is DiffKind.REMOVED:
        line = f"- {d.subject}  only in A" + (f": {fmt(d.a)}" if d.a is not None else "")
    elif d.field == "content":
        at = f" (first difference at byte {d.offset})" if d.offset is not None else ""
        line = f"~ {d.subject}  content differs{at}"
    elif d.a is None and d.b is None:
        line = f"~ {d.subject}  {d.field} differs"
    else:
        name = f"{d.subject}  {d.field}" if d.field else d.subject
        line = f"~ {name}: {fmt(d.a)} -> {fmt(d.b)}"
    out = [line]
    if d.category.harmless:
        out[0] += f"  [{d.category.value}]"
    if d.note:
        out.append(f"    note: {d.note}")
    if d.detail:
        out += ["    | " + row if row else "    |" for row in d.detail.splitlines()]
    return out


def render_text(report: DiffReport) -> str:
    lines = [render_summary(report)]
    headings = dict(report.where_labels)
    for where, diffs in groups(report).items():
        heading = headings.get(where)
        lines += ["", f"{where}" + (f"  ({heading})" if heading else "")]
        for d in diffs:
            lines += ["  " + row for row in render_difference(d)]
    if report.truncated:
        lines += ["", f"... {report.truncated} more differences not shown (raise --limit)"]
    return "\n".join(lines) + "\n"
