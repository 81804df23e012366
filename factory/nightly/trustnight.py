"""The night's trust steps, after the builds and the re-verification: the quorum gate of
each image's candidate, what is attached to each published image (for the report), and
the watch list. Each step of each image stands alone: a failure is said and recorded,
and the next one runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from factory.attest import rebuild
from factory.common.errors import UserError
from factory.common.progress import Progress
from factory.nightly.config import NightlyConfig
from factory.nightly.quorumgate import exact_tag, gate_image
from factory.nightly.trustseen import known_keys, observe
from factory.nightly.watch import WatchNight, attest_watched, watch_all
from factory.recipes.recipe import load_recipe
from factory.report.history import History, ResultRecord
from factory.source.upstream import ResolvedSource, SourceChoice


def utc_now() -> str:
    return rebuild.utc_now()


def gate_and_observe(
    cfg: NightlyConfig,
    history: History,
    images: Sequence[str],
    run_id: str,
    now: Callable[[], str],
    say: Callable[[str], None],
) -> None:
    if not cfg.publish:
        return
    known = known_keys(cfg)
    for image in images:
        try:
            recipe = load_recipe(image)
            if cfg.quorum is not None:
                gate_image(history, recipe, cfg.publish, cfg.quorum, run_id, now(), say)
            recs = history.records(image=recipe.ref)
            pub = next(
                (r for r in recs if r.kind == "nightly" and r.publishable and r.published
                 and r.index_digest), None,
            )  # fmt: skip
            if pub is not None and pub.index_digest is not None:
                ref = cfg.publish[0].describe(recipe.name, exact_tag(recipe, pub.snapshot))
                say(observe(history, recipe.ref, ref, pub.index_digest, run_id, now(), known))
        except UserError as exc:
            say(f"{image}: trust step: {exc.message}")


class NightParts(Protocol):
    """What these steps read of factory.nightly.run.Night (a Protocol: run imports us)."""

    cfg: NightlyConfig
    history: History
    src: ResolvedSource
    progress: Progress
    run_id: str


def after_builds(
    night: NightParts,
    images: Sequence[str],
    *,
    watch: bool = True,
    now: Callable[[], str] = utc_now,
) -> list[ResultRecord]:
    """The gate and the attestations seen for our images, then the watch list's rows."""
    gate_and_observe(night.cfg, night.history, images, night.run_id, now, night.progress.say)
    if not watch:
        return []
    src = night.src
    choice = SourceChoice(
        proxy=src.proxy.url if src.proxy else None, upstream=src.packages_from.proxy_upstream
    )
    return watch_night(night.cfg, night.history, choice, night.run_id, now, night.progress)


def watch_night(
    cfg: NightlyConfig,
    history: History,
    choice: SourceChoice,
    run_id: str,
    now: Callable[[], str],
    progress: Progress,
) -> list[ResultRecord]:
    if not cfg.watch:
        return []
    attest = attest_watched(cfg.attest_key, cfg.sign_command) if cfg.attest_key else None
    w = WatchNight(
        history, run_id, choice, progress, now, cfg.history.parent / "watch-attestations",
        attest, tuple(known_keys(cfg)),
    )  # fmt: skip
    return watch_all(w, cfg.watch)
