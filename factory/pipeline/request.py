"""The one builder of build requests: architecture order and provenance are decided here.

`reprobase build`, the nightly and `reproduce` all ask this module, so an image's
provenance (and with it its labels and digest) cannot depend on which one built it.
"""

from __future__ import annotations

from collections.abc import Iterable

from factory.common.arch import Architecture, require_emulation
from factory.common.errors import UserError
from factory.image.compress import Compression
from factory.image.config import Provenance
from factory.image.selfdesc import RebuildSpec
from factory.pipeline.build import BuildRequest
from factory.recipes.recipe import Recipe
from factory.rootfs.mmdebstrap import mmdebstrap_version
from factory.source.snapshot import Timestamp
from factory.source.upstream import ResolvedSource


def request_arches(names: Iterable[str]) -> tuple[Architecture, ...]:
    """Architecture names to the canonical order, each one runnable here (natively or
    under qemu), or one line saying why not."""
    arches = Architecture.parse_list(names)
    if not arches:
        raise UserError("no architecture selected", hint="e.g. --arch amd64")
    for a in arches:
        require_emulation(a, f"to build a {a.debian} image")
    return arches


def provenance(recipe: Recipe, src: ResolvedSource, like: RebuildSpec | None = None) -> Provenance:
    """What the image will say about where its packages came from and which tools made it.

    `like`: a rebuild describes itself as the original did (its origin and mirror), so
    that an identical rebuild is byte-identical, labels included.
    """
    origin, mirror = (like.packages_from, like.mirror) if like else (src.packages_from, src.mirror)
    comp = Compression.parse(recipe.compression)
    return Provenance(origin, mirror, mmdebstrap_version(), comp.describe(), src.security_mirror)


def build_request(
    recipe: Recipe,
    arches: Iterable[Architecture],
    pin: Timestamp,
    src: ResolvedSource,
    like: RebuildSpec | None = None,
) -> BuildRequest:
    return BuildRequest(
        recipe, Architecture.ordered(arches), pin, src.apt, provenance(recipe, src, like)
    )
