"""Rebuild an image from its own self-description and compare digests.

Works from a registry reference, an OCI layout directory or `oci:DIR[:TAG]`,
with no checkout of the original recipe: everything comes from the image.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

from factory.common.paths import scratch_dir
from factory.common.progress import Progress
from factory.image.selfdesc import RebuildSpec, read_spec
from factory.pipeline import toolversion
from factory.pipeline.build import build
from factory.pipeline.request import build_request
from factory.registry.fetch import fetch
from factory.rootfs.buildenv import env_a
from factory.source.origin import NO_SECURITY, Origin
from factory.source.upstream import SourceChoice, preflight, resolve


@dataclass
class Reproduction:
    reference: str
    spec: RebuildSpec
    rebuilt_digest: str
    warnings: list[str] = field(default_factory=list)
    diff_summary: str = ""
    diff: dict[str, Any] | None = None

    @property
    def identical(self) -> bool:
        return self.rebuilt_digest == self.spec.index_digest

    def verdict(self) -> str:
        if self.identical:
            return f"reproduced: identical ({self.spec.index_digest})"
        return f"differs: published {self.spec.index_digest}, rebuilt {self.rebuilt_digest}"

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "reproduced": self.identical,
            "verdict": self.verdict(),
            "index_digest": self.spec.index_digest,
            "rebuilt_digest": self.rebuilt_digest,
            "image": self.spec.recipe.ref,
            "snapshot": self.spec.pin.text,
            "architectures": [a.debian for a in self.spec.arches],
            "packages_from": self.spec.packages_from.value,
            "warnings": self.warnings,
            "diff_summary": self.diff_summary,
            "diff": self.diff,
        }


def source_for(spec: RebuildSpec, choice: SourceChoice) -> SourceChoice:
    """Rebuild from where the original came from, unless the user says otherwise."""
    if choice.mirror or choice.proxy or choice.upstream != "auto":
        return choice
    if spec.packages_from is Origin.RECORDED_MIRROR:
        return SourceChoice(upstream="record", cache_dir=choice.cache_dir)
    if spec.packages_from is Origin.MIRROR and spec.mirror:
        # an image from before the security label had none: rebuild it the same way
        return SourceChoice(mirror=spec.mirror, security_mirror=spec.security_mirror or NO_SECURITY)
    return SourceChoice(upstream="snapshot", cache_dir=choice.cache_dir)


def reproduce(reference: str, choice: SourceChoice, progress: Progress) -> Reproduction:
    work = scratch_dir("reproduce")
    try:
        # Refuse bad flags and read the image before saying anything: one line on error.
        choice.validate()
        layout, tag = fetch(reference, work)
        spec = read_spec(layout, tag)
        note = toolversion.notice(reference, spec.versions["reprobase"])
        if note:  # before the rebuild: a difference may be the tool's, not the image's
            progress.say(note)
        progress.say(
            f"{spec.recipe.ref} @ {spec.pin} for {', '.join(a.debian for a in spec.arches)}: "
            f"rebuilding from {spec.packages_from.value}"
        )
        with resolve(source_for(spec, choice), spec.pin, work, spec.recipe.suite) as src:
            # The provenance is the image's own: the rebuild must describe itself identically.
            req = build_request(spec.recipe, spec.arches, spec.pin, src, like=spec)
            prov = req.provenance
            preflight(src, spec.recipe.suite)
            rebuilt = build(req, env_a(work / "env"), work / "rebuilt", progress)
        result = Reproduction(
            reference,
            spec,
            rebuilt.index_digest,
            spec.version_warnings(prov.mmdebstrap, prov.compressor),
        )
        if not result.identical:
            with progress.stage("explaining the difference"):
                from factory.diffing import diff_images, render_summary

                rep = diff_images(layout, rebuilt.layout)
                result.diff_summary, result.diff = render_summary(rep), rep.to_json()
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
