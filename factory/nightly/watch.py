"""The watch list: images built elsewhere (by other reprobase users), rebuilt every night
from their own labels (factory.pipeline.reproduce), attested when the nightly has a key,
and kept in the history as kind "watch" rows (image = the reference as configured).

A watched image is someone else's: its registry may be down, its labels may be from a
newer reprobase, its rebuild may fail in ways ours never do. Each is tried on its own and
any failure becomes that image's "error" row; the others and the night go on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.attest.keys import TrustedKey
from factory.common.errors import UserError
from factory.common.progress import Progress
from factory.nightly.trustseen import observe
from factory.pipeline.reproduce import Reproduction, reproduce
from factory.report.history import History, ResultRecord
from factory.source.upstream import SourceChoice

CULPRIT = "culprit: "  # the message line the report reads the culprit from
Rebuild = Callable[[str, SourceChoice, Progress], Reproduction]
Attest = Callable[[Reproduction, Path], str]  # signs, attaches (or keeps); says what it did


@dataclass(frozen=True)
class WatchNight:
    history: History
    run_id: str
    choice: SourceChoice  # the night's proxy and upstream
    progress: Progress
    now: Callable[[], str]
    keep: Path  # envelopes that could not be attached to someone else's registry
    attest: Attest | None = None
    known: tuple[TrustedKey, ...] = ()
    rebuild: Rebuild = reproduce


def culprit(diff: dict[str, Any] | None) -> str | None:
    """The first difference the diff could explain (factory.diffing.culprits), else the
    first difference at all."""
    diffs = (diff or {}).get("differences") or []
    for d in diffs:
        if d.get("note"):
            return f"{d.get('subject')}: {d['note']}"
    if diffs:
        d = diffs[0]
        return f"{d.get('subject')}: {d.get('field')} {d.get('kind')}"
    return None


def _row(w: WatchNight, ref: str, arch: str, started: str, **facts: Any) -> ResultRecord:
    return ResultRecord(**{
        "run_id": w.run_id, "kind": "watch", "image": ref, "arch": arch, "snapshot": "",
        "verdict": "error", "index_digest": None, "manifest_digest": None, "digest_b": None,
        "size": None, "uncompressed_size": None, "packages_digest": None, "packages": (),
        "published": (), "upstream_bytes": None, "durations": {}, "started": started,
        "finished": w.now(), "message": "", **facts,
    })  # fmt: skip


def watch_one(w: WatchNight, ref: str) -> list[ResultRecord]:
    started, t0 = w.now(), time.monotonic()
    try:
        res = w.rebuild(ref, w.choice, w.progress)
    except Exception as exc:  # someone else's image: any failure is its row
        why = exc.message if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        w.progress.say(f"watch {ref}: error: {why}")
        return [_row(w, ref, "all", started, message=why)]
    lines = [res.verdict()]
    named = None if res.identical else culprit(res.diff)
    if named:
        lines.append(CULPRIT + named)
    if w.attest is not None:
        lines.append(w.attest(res, w.keep))
    note = observe(w.history, ref, ref, res.spec.index_digest, w.run_id, w.now(), w.known)
    w.progress.say(f"watch {ref}: {lines[0]}; {note}")
    spec = res.spec
    return [
        _row(
            w,
            ref,
            a.debian,
            started,
            snapshot=spec.pin.text,
            verdict="reproducible" if res.identical else "differs",
            index_digest=spec.index_digest,
            digest_b=res.rebuilt_digest,
            durations={"rebuild": round(time.monotonic() - t0, 1)},
            message="\n".join(lines),
            packages_from=spec.packages_from.value,
        )
        for a in spec.arches
    ]


def watch_all(w: WatchNight, refs: Sequence[str]) -> list[ResultRecord]:
    out: list[ResultRecord] = []
    for ref in refs:
        for rec in watch_one(w, ref):
            w.history.add(rec)
            out.append(rec)
    return out


def envelope_path(keep: Path, ref: str, digest: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", ref).strip("_")[:80]
    return keep / f"{stem}-{digest.removeprefix('sha256:')[:16]}.dsse.json"


def attest_watched(key: Path, sign_command: str | None) -> Attest:
    """Sign what the rebuild found and attach it to the watched image; a registry we may
    not write to keeps the signed envelope beside the history instead."""

    def attest(res: Reproduction, keep: Path) -> str:
        from factory.attest.signer import make_signer
        from factory.pipeline.rebuildattest import sign_rebuild

        try:
            signer = make_signer(key, sign_command)
        except UserError as exc:
            return f"not attested: {exc.message}"
        try:
            signed = sign_rebuild(res, signer, push=True)
            return f"attested ({signed.claim.outcome}) as {signed.pushed}"
        except UserError as exc:
            why = exc.message
        try:
            signed = sign_rebuild(res, signer, push=False)
        except UserError as exc:
            return f"not attested: {exc.message}"
        path = envelope_path(keep, res.reference, res.spec.index_digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(signed.envelope.render())
        return f"attested ({signed.claim.outcome}), not attached ({why}): {path}"

    return attest
