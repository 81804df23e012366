"""One build of a recipe, for every requested architecture, into an OCI image layout.

rootfs (mmdebstrap) -> canonical layer -> config/manifest per arch -> image index.
The double build (factory.pipeline.double) calls this twice with different BuildEnvs.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.common import outputs
from factory.common.arch import Architecture
from factory.common.progress import Progress, Task
from factory.image import oci
from factory.image.assemble import ArchImage, assemble_arch, assemble_index
from factory.image.compress import Compression
from factory.image.config import (
    Provenance,
)
from factory.pipeline.slots import BuildSlots
from factory.recipes.recipe import Recipe
from factory.rootfs.buildenv import BuildEnv
from factory.rootfs.debhashes import load_facts
from factory.rootfs.mmdebstrap import RootfsJob, boot_clock, bootstrap, read_phases
from factory.rootfs.packages import Package
from factory.source.buildsource import BuildSource
from factory.source.snapshot import Timestamp


@dataclass(frozen=True)
class BuildRequest:
    recipe: Recipe
    arches: tuple[Architecture, ...]
    pin: Timestamp
    source: BuildSource
    provenance: Provenance

    @property
    def compression(self) -> Compression:
        return Compression.parse(self.recipe.compression)


@dataclass
class ArchResult:
    arch: Architecture
    manifest: oci.Descriptor
    config_digest: str
    layer_digest: str
    diff_id: str
    size: int
    uncompressed_size: int
    packages: list[Package] = field(default_factory=list)
    image: ArchImage | None = None  # what factory.image.assemble made
    # what the SBOM needs from the chroot (factory.rootfs.debhashes), and the digests of
    # the attestations made from it (factory.pipeline.attach)
    facts: dict[str, Any] = field(default_factory=dict)
    attestations: dict[str, str] = field(default_factory=dict)

    def digests(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest.digest,
            "config": self.config_digest,
            "layer": self.layer_digest,
            "diff_id": self.diff_id,
            "size": self.size,
            "uncompressed_size": self.uncompressed_size,
        }


@dataclass
class BuildResult:
    layout: Path
    index: oci.Descriptor
    arches: list[ArchResult]
    env: BuildEnv

    @property
    def index_digest(self) -> str:
        return self.index.digest

    def digests(self) -> dict[str, Any]:
        return {
            "index": self.index.digest,
            "platforms": {a.arch.oci_platform_string(): a.digests() for a in self.arches},
        }


def build_arch(
    req: BuildRequest,
    arch: Architecture,
    env: BuildEnv,
    workdir: Path,
    layout: Path,
    progress: Progress,
) -> ArchResult:
    job = RootfsJob(req.recipe, arch, req.pin, req.source, env, workdir)
    task = Task(req.recipe.ref, arch.debian, env.name)
    with progress.stage("root filesystem (mmdebstrap)", task):
        started = boot_clock()
        tar = bootstrap(job)
        phases = read_phases(job, started, boot_clock())
    for phase, seconds in phases.items():
        progress.record(f"mmdebstrap: {phase}", seconds, task)
    with tar, progress.stage(f"canonical layer ({req.compression.describe()})", task):
        img = assemble_arch(layout, req.recipe, req.pin, arch, req.provenance, tar)
    progress.record("canonical tar", img.layer.tar_seconds, task)
    progress.record("compression", img.layer.compress_seconds, task)
    progress.record("OCI config and manifest", img.oci_seconds, task)
    return ArchResult(
        arch,
        img.manifest,
        img.config_digest,
        img.layer.digest,
        img.layer.diff_id,
        img.layer.size,
        img.layer.uncompressed_size,
        img.packages,
        img,
        load_facts(job.facts_path),
    )


def build(
    req: BuildRequest,
    env: BuildEnv,
    layout: Path,
    progress: Progress,
    slots: BuildSlots | None = None,
) -> BuildResult:
    """Build every architecture of req into the layout directory (created fresh).
    slots: each architecture's build waits for one (the nightly's --jobs)."""
    if layout.exists():
        shutil.rmtree(layout)
    oci.init_layout(layout)
    workroot = env.workdir_parent
    workroot.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for arch in req.arches:
            wd = workroot / f"work-{arch.debian}"
            task = Task(req.recipe.ref, arch.debian, env.name)
            try:
                with slots.slot() if slots else contextlib.nullcontext():
                    results.append(build_arch(req, arch, env, wd, layout, progress))
            except BaseException:
                progress.finish(task, ok=False)
                raise
            progress.finish(task)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    images = [r.image for r in results if r.image is not None]
    idx_desc = assemble_index(layout, req.recipe, req.pin, req.provenance, images)
    return BuildResult(layout, idx_desc, results, env)


def move_layout(src: Path, dst: Path, *, force: bool = False, flag: str = "--output") -> None:
    """Put the finished layout src at dst: a previous reprobase layout there is replaced
    atomically, anything else is refused (factory.common.outputs)."""
    outputs.install_dir(src, dst, outputs.OutputKind.LAYOUT, force=force, flag=flag)
