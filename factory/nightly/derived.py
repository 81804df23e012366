"""The nightly's derived images ([[nightly.derived]], factory.nightly.derivedconfig).

After the base images are built and verified, each derived image is rebuilt FROM the
newest published image of its base (tonight's, or the last one when tonight's base was
unchanged or failed), pinned by digest: the Containerfile's FROM is replaced by that
reference in the copy that is built and recorded, so the image says exactly what it
was built on and `reprobase reproduce` rebuilds it from the registry alone. It is
double-built (factory.pipeline.derived), published on agreement to the night's targets
under `TAG`, `TAG-YYYYMMDD` and `TAG-<pin>`, recorded in the history as kind "derived"
with its base's digest, and later re-verified from what it records (kind
"derived-reverify"). Each derived image stands alone: its failure becomes its own
"error" row and the next one runs.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from factory.common.arch import Architecture
from factory.common.errors import UserError
from factory.common.progress import Progress
from factory.derive.containerfile import parse
from factory.nightly.config import NightlyConfig
from factory.nightly.derivedconfig import DerivedImage
from factory.pipeline.double import Verdict
from factory.pipeline.slots import BuildSlots
from factory.publish.targets import PublishTarget
from factory.report.history import PUBLISHABLE, History, ResultRecord
from factory.source.snapshot import Timestamp
from factory.source.upstream import ResolvedSource, SourceChoice

KIND, REVERIFY_KIND = "derived", "derived-reverify"  # history kinds (factory.report.history)


class NightParts(Protocol):
    """What these steps read of factory.nightly.run.Night (a Protocol: run imports us)."""

    cfg: NightlyConfig
    pin: Timestamp
    history: History
    src: ResolvedSource
    progress: Progress
    workdir: Path
    run_id: str
    slots: BuildSlots | None

    def add(self, rec: ResultRecord) -> None: ...


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def selected(cfg: NightlyConfig, only: Sequence[str]) -> tuple[DerivedImage, ...]:
    """--only NAME selects a derived image by name, or every one built on base NAME."""
    return tuple(d for d in cfg.derived if not only or d.name in only or d.base in only)


def base_images(cfg: NightlyConfig, only: Sequence[str]) -> list[str]:
    """The base images a night builds: --only may name derived images alone (they are
    then built on the last published bases)."""
    names = {d.name for d in cfg.derived}
    return [i for i in cfg.images if not only or i in only] or [o for o in only if o not in names]


# -- the base ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BaseChoice:
    image: str  # "debian:bookworm-slim"
    reference: str  # pinned: REF@sha256:..., where the night published it
    digest: str
    snapshot: str  # the night it was published (its exact tag)
    note: str  # how it was chosen, for the record's message


def choose_base(history: History, target: PublishTarget, base: str, run_id: str) -> BaseChoice:
    """The newest published image of base (a nightly image's ref, e.g. debian:bookworm-slim)."""
    from factory.recipes.recipe import load_recipe

    recipe = load_recipe(base)
    recs = [r for r in history.records(image=recipe.ref) if r.kind == "nightly"]
    pub = next((r for r in recs if r.publishable and r.published and r.index_digest), None)
    if pub is None or pub.index_digest is None:
        raise UserError(
            f"{recipe.ref}: no published image yet to build on",
            hint="the base must reproduce and be published by a nightly first",
        )
    tonight = next((r for r in recs if r.run_id == run_id), None)
    if tonight is not None and tonight.publishable:
        note = f"on {recipe.ref} as verified tonight ({tonight.verdict})"
    elif tonight is not None:
        note = f"on {recipe.ref} of {pub.snapshot} (tonight's {tonight.verdict})"
    else:
        note = f"on {recipe.ref} of {pub.snapshot} (not built tonight)"
    ref = target.describe(recipe.name, f"{recipe.tag}-{pub.snapshot}")
    return BaseChoice(recipe.ref, f"{ref}@{pub.index_digest}", pub.index_digest, pub.snapshot, note)


def with_base(text: str, reference: str, build_args: Mapping[str, str] | None = None) -> str:
    """The Containerfile with its FROM image replaced by reference (flags and `AS name`
    kept); every other byte as written. Pure."""
    cf = parse(text, build_args or {})
    ins = cf.from_instruction
    words = ins.args.split()
    flags = [w for w in words if w.startswith("--platform")]
    rest = [w for w in words if not w.startswith("--platform")][1:]
    line = " ".join(["FROM", *flags, reference, *rest]) + "\n"
    lines = text.splitlines(keepends=True)
    return "".join([*lines[: ins.line - 1], line, *lines[ins.end_line :]])


# -- one derived image ------------------------------------------------------------------
def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-.") or "derived"


def _row(night: NightParts, d: DerivedImage, arch: str, started: str, **facts: Any) -> ResultRecord:
    """A derived image's row: an error until facts say otherwise."""
    rec = ResultRecord(
        run_id=night.run_id, kind=KIND, image=d.name, arch=arch, snapshot=night.pin.text,
        verdict="error", index_digest=None, manifest_digest=None, digest_b=None, size=None,
        uncompressed_size=None, packages_digest=None, packages=(), published=(),
        upstream_bytes=None, durations={}, started=started, finished=utc_now(),
    )  # fmt: skip
    return dataclasses.replace(rec, **facts)


def _arches(
    night: NightParts, d: DerivedImage, have: Sequence[Architecture]
) -> tuple[Architecture, ...]:
    names = d.architectures or night.cfg.architectures
    if names is None:
        return tuple(have)
    return Architecture.parse_list(names)


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    base: BaseChoice
    packages_from: str
    seconds: float


def build_one(night: NightParts, d: DerivedImage) -> Outcome:
    """Both builds of one derived image, FROM the chosen base; raises UserError."""
    from factory.derive import context as contexts
    from factory.derive.base import resolve_base
    from factory.pipeline.derived import double_build_derived, make_request

    cfg = night.cfg
    base = choose_base(night.history, cfg.publish[0], d.base, night.run_id)
    t0 = time.monotonic()
    work = night.workdir / f"derived-{slug(d.name)}"
    work.mkdir(parents=True, exist_ok=True)
    resolved = resolve_base(base.reference, work / "base")
    try:
        text = d.containerfile.read_text(encoding="utf-8")
        text = with_base(text, base.reference, dict(d.build_args))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{d.containerfile}: cannot read it ({exc})") from None
    arches = _arches(night, d, [p.arch for p in resolved.platforms])
    req = make_request(
        text, dict(d.build_args), resolved, arches, d.name, contexts.pack(d.context),
        night.src.apt.proxy,
    )  # fmt: skip
    keep = cfg.history.parent / "mismatches" / f"{slug(d.name)}-{night.pin.text}"
    night.progress.say(f"{d.name}: FROM {base.reference} ({base.note})")
    verdict = double_build_derived(
        req, work / "layout", once=False, progress=night.progress, keep_dir=keep,
        slots=night.slots,
    )  # fmt: skip
    return Outcome(verdict, base, resolved.packages_from.value, round(time.monotonic() - t0, 1))


def tags(d: DerivedImage, pin: Timestamp) -> list[str]:
    return [d.tag, f"{d.tag}-{pin.day}", f"{d.tag}-{pin.text}"]


def publish(night: NightParts, d: DerivedImage, layout: Path) -> list[str]:
    """Every target gets the image under tags(); a context too large to be embedded goes
    with it (beside it in a store, as a referrer in a registry) so that it reproduces."""
    from factory.image import oci
    from factory.pipeline.derived import context_artifact, derived_spec_of
    from factory.publish import store
    from factory.publish import targets as publishing

    found = derived_spec_of(layout, None)
    assert found is not None  # we just built it
    spec = found[0]
    art = context_artifact(layout, spec)
    names = tags(d, night.pin)
    written: list[str] = []
    for t in night.cfg.publish:
        if t.is_store:
            where = t.store_dir(d.repository)
            store.publish(layout, where, names)
            if art is not None:
                shutil.copyfile(oci.blob_path(layout, spec.context_digest),
                                oci.blob_path(where, spec.context_digest))  # fmt: skip
        else:
            ref = f"{t.repository(d.repository)}:{names[0]}"
            publishing.push(layout, ref, names[1:], None, night.progress.say)
            if art is not None:
                _attach_context(ref, layout, art)
        written += [t.describe(d.repository, tag) for tag in names]
        night.progress.say(
            f"published {t.describe(d.repository, names[0])} (+{len(names) - 1} tags)"
        )
    return written


def _attach_context(ref: str, layout: Path, art: tuple[bytes, str, str]) -> None:
    from factory.image.selfdesc import top_descriptor
    from factory.registry import attach_referrer_sync

    payload, media_type, artifact_type = art
    attach_referrer_sync(
        ref, top_descriptor(layout), artifact_type, payload, media_type,
        {"org.opencontainers.image.title": "reprobase build context"},
    )  # fmt: skip


def conclude(night: NightParts, d: DerivedImage, out: Outcome, started: str) -> list[ResultRecord]:
    v = out.verdict
    b = {r.arch: r for r in v.b.arches} if v.b else {}
    last = next(
        (r for r in night.history.records(image=d.name)
         if r.kind == KIND and r.verdict in PUBLISHABLE and r.published), None,
    )  # fmt: skip
    if not v.reproducible:
        verdict, published = "differs", []
        message = f"{out.base.note}; {'; '.join(v.differences[:3])}\n{v.report_text[:4000]}"
        night.progress.say(f"{d.name}: NOT REPRODUCIBLE, not published")
    else:
        published = publish(night, d, v.a.layout)
        same = last is not None and last.index_digest == v.a.index_digest
        verdict = "unchanged" if same else "reproducible"
        message = out.base.note + ("; the same digest as published before" if same else "")
    return [
        _row(
            night,
            d,
            r.arch.debian,
            started,
            verdict=verdict,
            index_digest=v.a.index_digest,
            manifest_digest=r.manifest.digest,
            digest_b=b[r.arch].manifest.digest if r.arch in b else None,
            size=r.size,
            uncompressed_size=r.uncompressed_size,
            published=tuple(published),
            durations={"double build": out.seconds},
            message=message.strip(),
            packages_from=out.packages_from,
            base_digest=out.base.digest,
        )
        for r in v.a.arches
    ]


def night_one(night: NightParts, d: DerivedImage) -> list[ResultRecord]:
    started = utc_now()
    try:
        rows = conclude(night, d, build_one(night, d), started)
    except Exception as exc:  # a user's Containerfile: any failure is that image's row
        why = exc.render().removeprefix("error: ") if isinstance(exc, UserError) else repr(exc)
        night.progress.say(f"{d.name}: error: {why}")
        rows = [_row(night, d, "all", started, message=why)]
    finally:
        shutil.rmtree(night.workdir / f"derived-{slug(d.name)}", ignore_errors=True)
    return rows


# -- re-verification --------------------------------------------------------------------
def reverify_one(night: NightParts, d: DerivedImage) -> list[ResultRecord]:
    """Rebuild the last `reverify` published images of d from what they record."""
    from factory.pipeline.derived import reproduce_reference

    cfg = night.cfg
    seen: list[ResultRecord] = []
    for rec in night.history.records(image=d.name):
        if (
            rec.kind == KIND and rec.verdict in PUBLISHABLE and rec.published
            and rec.run_id != night.run_id
            and rec.index_digest not in {s.index_digest for s in seen}
        ):  # fmt: skip
            seen.append(rec)
        if len(seen) >= cfg.reverify:
            break
    src = night.src
    choice = SourceChoice(
        proxy=src.proxy.url if src.proxy else None, upstream=src.packages_from.proxy_upstream
    )
    out: list[ResultRecord] = []
    for rec in seen:
        ref = cfg.publish[0].describe(d.repository, f"{d.tag}-{rec.snapshot}")
        started = utc_now()
        try:
            res = reproduce_reference(ref, choice, night.progress)
            verdict = "reproducible" if res.identical else "differs"
            digest_b, msg = res.rebuilt_digest, res.verdict()
        except UserError as exc:
            verdict, digest_b, msg = "error", None, exc.render().removeprefix("error: ")
        night.progress.say(f"re-verify {ref}: {msg}")
        for r in night.history.records(image=d.name):
            if r.run_id == rec.run_id and r.kind == KIND:
                out.append(_row(
                    night, d, r.arch, started, kind=REVERIFY_KIND, snapshot=r.snapshot,
                    verdict=verdict, index_digest=r.index_digest,
                    manifest_digest=r.manifest_digest, digest_b=digest_b, size=r.size,
                    uncompressed_size=r.uncompressed_size, message=msg,
                    packages_from=r.packages_from, base_digest=r.base_digest,
                ))  # fmt: skip
    return out


def after_bases(night: NightParts, only: Sequence[str]) -> None:
    """Every selected derived image: built, published, re-verified, each on its own.
    Needs publish targets (the base is taken from the first)."""
    chosen = selected(night.cfg, only)
    if not chosen:
        return
    if not night.cfg.publish:
        night.progress.say("derived images: skipped (no publish target to take bases from)")
        return
    for d in chosen:
        for rec in night_one(night, d):
            night.add(rec)
    if night.cfg.reverify > 0:
        for d in chosen:
            for rec in reverify_one(night, d):
                night.add(rec)


def publish_checks(cfg: NightlyConfig, only: Sequence[str]) -> list[str]:
    """Before the night: store directories must be writable; returns the registry
    references whose push access the caller checks with the base images'."""
    from factory.source.upstream import check_writable

    refs: list[str] = []
    for d in selected(cfg, only):
        for t in cfg.publish:
            if t.is_store:
                check_writable(f"publish target {t.spec}", t.store_dir(d.repository))
            else:
                refs.append(f"{t.repository(d.repository)}:{d.tag}")
    return refs
