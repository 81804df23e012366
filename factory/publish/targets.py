"""Publish a verified layout to the configured targets (local OCI stores, registries).

Tags, per the project's convention: `bookworm`, `bookworm-YYYYMMDD` and
`bookworm-YYYYMMDDTHHMMSSZ` (the exact snapshot). Blobs and manifests go first,
tags last, so a failure part-way never moves a tag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.attest.store import copy_referrers
from factory.common.canonical import canonical_json
from factory.common.paths import scratch
from factory.image.selfdesc import top_descriptor
from factory.publish import store
from factory.recipes.recipe import Recipe
from factory.source.snapshot import Timestamp

REPORT_ARTIFACT = "application/vnd.reprobase.build-report.v1+json"


@dataclass(frozen=True)
class PublishTarget:
    """Where images go: a local OCI store (`oci:DIR`, one layout per image name inside)
    or a registry namespace (`host[:port]/path`, images go to `<namespace>/<name>`)."""

    spec: str

    @property
    def is_store(self) -> bool:
        return self.spec.startswith("oci:")

    def store_dir(self, name: str) -> Path:
        return Path(self.spec[4:]) / name

    def repository(self, name: str) -> str:
        return f"{self.spec.rstrip('/')}/{name}"

    def describe(self, name: str, tag: str) -> str:
        return (
            f"oci:{self.store_dir(name)}:{tag}"
            if self.is_store
            else f"{self.repository(name)}:{tag}"
        )


def date_tags(recipe: Recipe, pin: Timestamp) -> list[str]:
    return [f"{recipe.tag}-{pin.day}", f"{recipe.tag}-{pin.text}"]


def all_tags(recipe: Recipe, pin: Timestamp) -> list[str]:
    return [recipe.tag, *date_tags(recipe, pin)]


def attach_report(ref: str, layout: Path, report: dict[str, Any]) -> str:
    """The double-build report as an OCI 1.1 referrer of the image (never an index entry,
    so the index digest stays reproducible)."""
    from factory.registry import attach_referrer_sync

    return attach_referrer_sync(
        ref, top_descriptor(layout), REPORT_ARTIFACT, canonical_json(report),
        "application/json", {"org.opencontainers.image.title": "reprobase build report"},
    )  # fmt: skip


def push(
    layout: Path,
    ref: str,
    tags: Sequence[str],
    report: dict[str, Any] | None,
    progress: Callable[[str], None] | None = None,
) -> str:
    from factory.registry import push_layout_sync

    result = push_layout_sync(layout, [ref], tags=list(tags), progress=progress)
    if report is not None:
        attach_report(ref, layout, report)
    from factory.attest.push import push_attestations

    push_attestations(layout, ref)  # SBOMs and provenance the build kept beside the image
    return result.digest


def publish(
    layout: Path,
    recipe: Recipe,
    pin: Timestamp,
    targets: Sequence[PublishTarget],
    report: dict[str, Any] | None,
    say: Callable[[str], None],
    tags: Sequence[str] | None = None,
) -> list[str]:
    """Publish to every target under tags (default: the moving tag and the date tags);
    returns the references written."""
    tags = list(tags) if tags is not None else all_tags(recipe, pin)
    written: list[str] = []
    for t in targets:
        if t.is_store:
            top = store.publish(layout, t.store_dir(recipe.name), tags)
            copy_referrers(layout, t.store_dir(recipe.name), top.digest)  # SBOMs, provenance
        else:
            push(layout, f"{t.repository(recipe.name)}:{tags[0]}", tags[1:], report, say)
        written += [t.describe(recipe.name, tag) for tag in tags]
        say(f"published {t.describe(recipe.name, tags[0])} (+{len(tags) - 1} tags)")
    return written


def point(t: PublishTarget, name: str, src_tag: str, tags: Sequence[str]) -> str:
    """Point tags at the image src_tag names in one target; its digest."""
    if t.is_store:
        return store.retag(t.store_dir(name), src_tag, list(tags)).digest
    from factory.registry import pull_to_layout_sync

    with scratch("retag") as tmp:
        layout = pull_to_layout_sync(f"{t.repository(name)}:{src_tag}", Path(tmp) / "l")
        return push(layout, f"{t.repository(name)}:{tags[0]}", list(tags[1:]), None)


def retag(
    recipe: Recipe, pin: Timestamp, targets: Sequence[PublishTarget], say: Callable[[str], None]
) -> tuple[str, list[str]]:
    """A no-change night: tonight's date tags point at the image already published
    under the recipe's tag. Returns (that digest, references written)."""
    tags = date_tags(recipe, pin)
    digest, written = "", []
    for t in targets:
        digest = point(t, recipe.name, recipe.tag, tags)
        written += [t.describe(recipe.name, tag) for tag in tags]
        say(f"unchanged: {t.describe(recipe.name, tags[0])} -> {digest}")
    return digest, written
