"""The nightly: for every configured image, pin tonight's snapshot, build twice,
publish only what reproduced, re-tag unchanged package sets, re-verify past
images, record everything in the history and write the report.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.common.arch import Architecture
from factory.common.errors import UserError
from factory.common.paths import scratch_dir
from factory.common.progress import Progress
from factory.nightly import derived, quorumgate, trustnight
from factory.nightly.config import NightlyConfig
from factory.pipeline.build import BuildRequest, move_layout
from factory.pipeline.double import Verdict, double_build
from factory.pipeline.reproduce import Reproduction, reproduce
from factory.pipeline.request import build_request
from factory.pipeline.slots import BuildSlots
from factory.publish import targets as publishing
from factory.recipes.recipe import Recipe, load_recipe
from factory.report.history import History, ResultRecord, check_history_file
from factory.source.snapshot import Timestamp
from factory.source.upstream import (
    ResolvedSource,
    SourceChoice,
    check_writable,
    preflight,
    resolve,
)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def nightly_lock(path: Path) -> Iterator[None]:
    """Two nightlies at once would race on tags and on the history: refuse the second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise UserError(
                f"another nightly is running (lock {path} held by pid {fh.read().strip() or '?'})",
                hint="wait for it to finish",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield


@dataclass
class Night:
    cfg: NightlyConfig
    pin: Timestamp
    history: History
    src: ResolvedSource
    progress: Progress
    workdir: Path
    run_id: str
    output_layout: Path | None = None  # CI mode: write the verified layout here, don't publish
    force: bool = False  # output_layout may replace a reprobase output of another kind
    records: list[ResultRecord] = field(default_factory=list)
    slots: BuildSlots | None = None  # the night's build slots (peak use is reported)

    def add(self, rec: ResultRecord) -> None:
        self.history.add(rec)
        self.records.append(rec)


def _arches(
    night: Night, recipe: Recipe, override: Sequence[str] | None
) -> tuple[Architecture, ...]:
    names = override or night.cfg.architectures or recipe.architectures
    return Architecture.parse_list(names)


def _request(night: Night, recipe: Recipe, arches: tuple[Architecture, ...]) -> BuildRequest:
    return build_request(recipe, arches, night.pin, night.src)


def _records(
    night: Night,
    recipe: Recipe,
    verdict: Verdict,
    outcome: str,
    started: str,
    published: list[str],
    message: str,
    index_digest: str | None = None,
) -> None:
    b = {r.arch: r for r in verdict.b.arches} if verdict.b else {}
    for r in verdict.a.arches:
        night.add(ResultRecord(
            run_id=night.run_id, kind="nightly", image=recipe.ref, arch=r.arch.debian,
            snapshot=night.pin.text, verdict=outcome,
            index_digest=index_digest or verdict.a.index_digest,
            manifest_digest=r.manifest.digest,
            digest_b=b[r.arch].manifest.digest if r.arch in b else None,
            size=r.size, uncompressed_size=r.uncompressed_size,
            packages_digest=_pkg_digest(r.packages), packages=tuple(r.packages),
            published=tuple(published), upstream_bytes=sum(verdict.upstream_bytes.values()),
            durations={f"build {k}": v for k, v in verdict.seconds.items()},
            started=started, finished=now_iso(), message=message,
            packages_from=night.src.packages_from.value,
        ))  # fmt: skip


def _pkg_digest(pkgs: list[tuple[str, str, str]]) -> str:
    from factory.rootfs.packages import packages_digest

    return packages_digest(pkgs)


def _error_records(
    night: Night, image: str, arches: Sequence[str], started: str, message: str
) -> None:
    for arch in arches:
        night.add(ResultRecord(
            run_id=night.run_id, kind="nightly", image=image, arch=arch, snapshot=night.pin.text,
            verdict="error", index_digest=None, manifest_digest=None, digest_b=None, size=None,
            uncompressed_size=None, packages_digest=None, packages=(), published=(),
            upstream_bytes=None, durations={}, started=started, finished=now_iso(),
            message=message, packages_from=night.src.packages_from.value,
        ))  # fmt: skip


def unchanged(night: Night, recipe: Recipe, verdict: Verdict) -> bool:
    """Tonight's package set equals the last published image's, for every architecture."""
    for r in verdict.a.arches:
        last = night.history.last_published(recipe.ref, r.arch.debian)
        if last is None or last.packages_digest != _pkg_digest(r.packages):
            return False
    return bool(night.cfg.publish) and night.output_layout is None


@dataclass
class Built:
    """One image's double build, done in a worker thread; concluded in the main one
    (the history, publication and the report are written from one thread only)."""

    image: str
    recipe: Recipe
    verdict: Verdict
    staging: Path
    keep: Path
    started: str


def build_image(
    night: Night, image: str, arch_override: Sequence[str] | None, slots: BuildSlots | None
) -> Built:
    started = now_iso()
    recipe = load_recipe(image)
    arches = _arches(night, recipe, arch_override)
    keep = night.cfg.history.parent / "mismatches" / f"{recipe.name}-{recipe.tag}-{night.pin.text}"
    staging = night.workdir / f"{recipe.name}-{recipe.tag}"
    meter = night.src.proxy.upstream_bytes if night.src.proxy else None
    preflight(night.src, recipe.suite)  # the archive answers for tonight's pin
    verdict = double_build(
        _request(night, recipe, arches),
        staging,
        once=False,
        progress=night.progress,
        keep_dir=keep,
        meter=meter,
        slots=slots,
    )
    return Built(image, recipe, verdict, staging, keep, started)


def conclude(night: Night, built: Built) -> None:
    """Publish what reproduced (or re-tag an unchanged package set) and record it."""
    say = night.progress.say
    image, recipe, verdict, staging, started = (
        built.image, built.recipe, built.verdict, built.staging, built.started
    )  # fmt: skip
    if not verdict.reproducible:
        summary = "; ".join(verdict.differences[:3])
        say(f"{image}: NOT REPRODUCIBLE, not published (evidence in {built.keep})")
        _records(
            night,
            recipe,
            verdict,
            "differs",
            started,
            [],
            f"{summary}\n{verdict.report_text[:4000]}".strip(),
        )
        return
    if night.output_layout is not None:
        move_layout(staging, night.output_layout, force=night.force, flag="--output-layout")
        _records(night, recipe, verdict, "reproducible", started, [], "verified; not published")
        return
    if unchanged(night, recipe, verdict):
        if night.cfg.quorum is not None:  # the moving tag may name an older image
            retag = quorumgate.retag_unchanged(
                night.history, recipe, night.pin, night.cfg.publish, say
            )
        else:
            retag = publishing.retag(recipe, night.pin, night.cfg.publish, say)
        digest, written = retag
        _records(
            night,
            recipe,
            verdict,
            "unchanged",
            started,
            written,
            f"package set unchanged: tagged the published {digest}",
            index_digest=digest,
        )
        return
    publish = quorumgate.publish_candidate if night.cfg.quorum else publishing.publish
    written = publish(staging, recipe, night.pin, night.cfg.publish, verdict.to_json(), say)
    _records(night, recipe, verdict, "reproducible", started, written, "")


def nightly_image(night: Night, image: str, arch_override: Sequence[str] | None) -> None:
    """One image, start to finish, in this thread."""
    conclude(night, build_image(night, image, arch_override, None))


def build_all(
    night: Night, images: Sequence[str], arch_override: Sequence[str] | None, jobs: int
) -> None:
    """Every image's double build over `jobs` build slots, concluded in config order.

    Each image's builds A and B wait for a slot per architecture, so `jobs` bounds the
    builds running at once, whatever mix of images, architectures (native and under
    qemu) and letters is ready. One image failing never stops the others.
    """
    slots = BuildSlots(jobs)
    night.slots = slots
    with ThreadPoolExecutor(max_workers=max(1, len(images)), thread_name_prefix="image") as pool:
        futures = {i: pool.submit(build_image, night, i, arch_override, slots) for i in images}
        for image, future in futures.items():
            started = now_iso()
            try:
                conclude(night, future.result())
            except UserError as exc:
                night.progress.say(f"{image}: error: {exc.message}")
                _error_records(
                    night,
                    image,
                    arch_override or night.cfg.architectures or ["all"],
                    started,
                    exc.render().removeprefix("error: "),  # the verdict says it
                )


def _sign_rebuild(night: Night, res: Reproduction) -> str:
    """Sign what the re-verification found and attach it to the published image."""
    from factory.attest.signer import make_signer
    from factory.pipeline.rebuildattest import sign_rebuild

    assert night.cfg.attest_key is not None
    try:
        signer = make_signer(night.cfg.attest_key, night.cfg.sign_command)
        signed = sign_rebuild(res, signer, push=True)
    except UserError as exc:
        return f"not attested: {exc.message}"
    return f"attested ({signed.claim.outcome}) as {signed.pushed}"


def reverify(night: Night, image: str) -> None:
    """Rebuild the last N published images from their own self-description."""
    if night.cfg.reverify <= 0 or not night.cfg.publish:
        return
    seen: list[ResultRecord] = []
    for rec in night.history.records(image=image):
        if (
            rec.kind == "nightly"
            and rec.verdict == "reproducible"
            and rec.published
            and rec.run_id != night.run_id
            and rec.index_digest not in {s.index_digest for s in seen}
        ):
            seen.append(rec)
        if len(seen) >= night.cfg.reverify:
            break
    target = night.cfg.publish[0]
    upstream = night.src.packages_from.proxy_upstream
    for rec in seen:
        recipe_name, _, tag = rec.image.partition(":")
        ref = target.describe(recipe_name, f"{tag}-{rec.snapshot}")
        started = now_iso()
        try:
            res = reproduce(
                ref,
                SourceChoice(
                    proxy=night.src.proxy.url if night.src.proxy else None, upstream=upstream
                ),
                night.progress,
            )
            verdict, digest_b, msg = (
                "reproducible" if res.identical else "differs",
                res.rebuilt_digest,
                res.verdict(),
            )
        except UserError as exc:
            verdict, digest_b, msg = "error", None, exc.render().removeprefix("error: ")
        if night.cfg.attest_key is not None and verdict != "error":
            msg += "; " + _sign_rebuild(night, res)
        night.progress.say(f"re-verify {ref}: {msg}")
        for r in night.history.records(image=rec.image):
            if r.run_id == rec.run_id and r.kind == "nightly":
                night.add(ResultRecord(
                    run_id=night.run_id, kind="reverify", image=r.image, arch=r.arch,
                    snapshot=r.snapshot, verdict=verdict, index_digest=r.index_digest,
                    manifest_digest=r.manifest_digest, digest_b=digest_b, size=r.size,
                    uncompressed_size=r.uncompressed_size, packages_digest=r.packages_digest,
                    packages=r.packages, published=(), upstream_bytes=None, durations={},
                    started=started, finished=now_iso(), message=msg,
                    packages_from=r.packages_from,
                ))  # fmt: skip


def validate_night(
    cfg: NightlyConfig,
    only: Sequence[str],
    arches: Sequence[str] | None,
    output_layout: Path | None,
) -> None:
    """Everything a night will need, refused before the first build (and before a failed
    night is written to the history): images, architectures, publish targets."""
    images = derived.base_images(cfg, only)  # --only may name derived images alone
    if arches is not None and not [a for a in arches if a.strip()]:
        raise UserError("--arch names no architecture", hint="e.g. --arch amd64")
    for name in [*(arches or ()), *(cfg.architectures or ())]:
        Architecture.parse(name.strip())
    recipes = [load_recipe(image) for image in images]
    check_history_file(cfg.history)  # an SQLite file of someone else's is never written
    if output_layout is not None:
        return
    from factory.registry import check_push_access_sync, parse_reference

    refs: list[str] = []
    for target in cfg.publish:
        for recipe in recipes:
            if target.is_store:
                check_writable(f"publish target {target.spec}", target.store_dir(recipe.name))
                continue
            try:
                ref = parse_reference(f"{target.repository(recipe.name)}:{recipe.tag}")
            except UserError as exc:
                raise UserError(
                    f"{cfg.source}: publish target {target.spec!r}: {exc.message}",
                    hint="a registry namespace such as 127.0.0.1:5000/reprobase or oci:DIR",
                ) from None
            refs.append(str(ref))
    refs += derived.publish_checks(cfg, only)
    if refs:
        check_push_access_sync(refs)


@dataclass
class NightlyResult:
    run_id: str
    snapshot: str
    records: list[ResultRecord]
    report: Path | None
    jobs: int = 1
    peak_builds: int = 0  # the most builds that ran at once (never more than jobs)

    @property
    def failed(self) -> list[ResultRecord]:
        # a watched image is someone else's: its failure is reported, not ours to fail on
        bad = ("differs", "error")
        return [r for r in self.records if r.verdict in bad and r.kind != "watch"]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "snapshot": self.snapshot, "ok": not self.failed,
            "report": str(self.report) if self.report else None,
            "results": [r.to_json() for r in self.records],
            "jobs": self.jobs, "peak_builds": self.peak_builds,
        }  # fmt: skip


def run_nightly(
    cfg: NightlyConfig,
    pin: Timestamp,
    *,
    only: Sequence[str] = (),
    arches: Sequence[str] | None = None,
    output_layout: Path | None = None,
    progress: Progress | None = None,
    force: bool = False,
    jobs: int = 1,
) -> NightlyResult:
    """jobs: builds at once (factory.pipeline.slots; the caller checks the machine)."""
    progress = progress or Progress()
    images = derived.base_images(cfg, only)  # --only may name derived images alone
    run_id = f"{pin.text}-{uuid.uuid4().hex[:8]}"
    workdir = scratch_dir("nightly")
    report = None
    try:
        with nightly_lock(cfg.history.parent / "nightly.lock"), History(cfg.history) as history:
            choice = SourceChoice(proxy=cfg.proxy, upstream=cfg.upstream, cache_dir=cfg.cache_dir)
            with resolve(choice, pin, cfg.history.parent) as src:
                night = Night(
                    cfg, pin, history, src, progress, workdir, run_id, output_layout, force
                )
                origin = src.packages_from.value
                progress.say(f"nightly {run_id}: {len(images)} images from {origin}")
                build_all(night, images, arches, jobs)
                if output_layout is None:
                    derived.after_bases(night, only)  # [[nightly.derived]], FROM those bases
                    for image in images:
                        reverify(night, image)
                    # quorum gate, attestations seen, watch list (--only: that image alone)
                    night.records += trustnight.after_builds(night, images, watch=not only)
            if output_layout is None:
                from factory.report import write_report

                report = write_report(history, cfg.report)
        peak = night.slots.peak if night.slots else 0
        return NightlyResult(run_id, pin.text, night.records, report, jobs, peak)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
