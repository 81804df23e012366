"""Derived images: one build (buildah runs the steps, we own the bytes), the double
build (B varied as for base images, clock a day ahead included), and the rebuild
from the image's own self-description.

Nothing is written to the output unless both builds agree; on a difference the two
layouts and the diff report are kept beside it as `.mismatch` evidence, as for base
images.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.common import outputs
from factory.common.arch import Architecture
from factory.common.errors import UserError
from factory.common.paths import SCRATCH
from factory.common.progress import Progress, Task
from factory.derive.base import BaseImage, platform_layout, resolve_base
from factory.derive.buildah import StepsJob, buildah_version, run_steps, storage_driver
from factory.derive.changes import BaseTree
from factory.derive.containerfile import SDE_ARG, Containerfile, parse
from factory.derive.context import ARTIFACT_TYPE, MEDIA_TYPE, Context, unpack
from factory.derive.describe import (
    DerivedSpec,
    check_no_proxy,
    derived_config,
    derived_index,
    derived_manifest,
    is_derived,
)
from factory.derive.reserialise import reserialise
from factory.image import oci
from factory.image.compress import Compression
from factory.image.selfdesc import platform_arch, top_descriptor
from factory.pipeline.build import ArchResult, BuildResult, move_layout
from factory.pipeline.double import Verdict, compare_digests, explain
from factory.pipeline.slots import BuildSlots
from factory.rootfs.buildenv import BuildEnv, env_a, env_b
from factory.source.origin import Origin
from factory.source.upstream import SourceChoice


@dataclass(frozen=True)
class DerivedRequest:
    containerfile: Containerfile
    build_args: tuple[tuple[str, str], ...]  # the user's, sorted
    base: BaseImage
    arches: tuple[Architecture, ...]
    tag: str
    context: Context
    context_embedded: str | None
    compression: Compression
    proxy: str | None  # the cache proxy, for the steps only

    @property
    def source_date_epoch(self) -> int:
        given = dict(self.build_args).get(SDE_ARG)
        return int(given) if given is not None else self.base.source_date_epoch

    def spec(self) -> DerivedSpec:
        return DerivedSpec(
            containerfile=self.containerfile.text,
            build_args=self.build_args,
            base=self.base.reference,
            base_digest=self.base.digest,
            base_title=self.base.title,
            snapshot=self.base.snapshot,
            source_date_epoch=self.source_date_epoch,
            packages_from=self.base.packages_from.value,
            tag=self.tag,
            arches=self.arches,
            context_digest=self.context.digest,
            context_embedded=self.context_embedded,
            compressor=self.compression.describe(),
        )


def make_request(
    text: str,
    build_args: dict[str, str],
    base: BaseImage,
    arches: tuple[Architecture, ...],
    tag: str,
    context: Context,
    proxy: str | None,
    compression: Compression = Compression.GZIP,
) -> DerivedRequest:
    sde = build_args.get(SDE_ARG)
    if sde is not None and not sde.isdigit():
        raise UserError(f"--build-arg {SDE_ARG}={sde}: not a number of seconds")
    for a in arches:
        base.platform(a)  # refused now if the base lacks it
    return DerivedRequest(
        parse(text, build_args),
        tuple(sorted(build_args.items())),
        base,
        arches,
        tag,
        context,
        context.embedded(),
        compression,
        proxy,
    )


def source_choice_for(origin: Origin, choice: SourceChoice) -> SourceChoice:
    """The steps' apt goes where the base's packages came from, unless told otherwise."""
    if choice.proxy or choice.upstream != "auto":
        return choice
    return SourceChoice(upstream=origin.proxy_upstream, cache_dir=choice.cache_dir)


def _build_arch(
    req: DerivedRequest,
    arch: Architecture,
    env: BuildEnv,
    wd: Path,
    layout: Path,
    clock: Callable[[str], None],
) -> ArchResult:
    sde = req.source_date_epoch
    base_ref = platform_layout(req.base, arch, wd / "base")
    ctx = unpack(req.context, wd / "context", sde)
    args = tuple(sorted({**dict(req.build_args), SDE_ARG: str(sde)}.items()))
    cf = wd / "Containerfile.run"
    job = StepsJob(cf, ctx, base_ref, arch, args, env, wd / "buildah", req.proxy, storage_driver())
    cf.write_text(req.containerfile.with_args([SDE_ARG, *(k for k, _ in job.varied_args())]))
    clock("set-up (base layout, context)")
    out = run_steps(job, clock)
    man = json.loads((out / "manifest.json").read_bytes())
    cfg = json.loads((out / man["config"]["digest"].split(":", 1)[1]).read_bytes())
    bp = req.base.platform(arch)
    n = len(bp.layers)
    ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
    if ids[:n] != bp.diff_ids or len(ids) > n + 1:
        raise UserError(
            f"buildah's result for {arch.debian} does not sit on the base's layers "
            f"({len(ids)} layers, the base has {n})",
            hint="report this: reprobase expects one new layer on the unchanged base",
        )
    layer = None
    blob = layout / "blobs" / "sha256" / f".derived-{arch.debian}.tmp"
    if len(ids) == n + 1:
        src = out / man["layers"][n]["digest"].split(":", 1)[1]
        tree = BaseTree(out / d["digest"].split(":", 1)[1] for d in man["layers"][:n])
        norm = reserialise(src, blob, req.compression, sde, req.proxy, tree)
        if norm.layer.entries:
            layer = norm.layer
            oci.add_blob_file(layout, blob, layer.digest)
        blob.unlink(missing_ok=True)
    clock("canonical layer (changes on the base, normalised, compressed)")
    spec = req.spec()
    config = derived_config(spec, bp.config, cfg, layer, arch)
    check_no_proxy(config, req.proxy)
    cfg_desc = oci.write_json_blob(layout, config, oci.MT_CONFIG)
    ldesc = oci.Descriptor(req.compression.media_type, layer.digest, layer.size) if layer else None
    manifest = derived_manifest(spec, cfg_desc, bp.manifest_json, bp.manifest.digest, ldesc)
    man_desc = oci.write_json_blob(layout, manifest, oci.MT_MANIFEST, platform=arch.to_oci())
    for d in bp.layers:  # the base's layer blobs, byte for byte
        oci.copy_blob(req.base.layout, oci.Descriptor.from_json(d), layout)
    clock("config, manifest, base blobs")
    return ArchResult(
        arch,
        man_desc,
        cfg_desc.digest,
        layer.digest if layer else "",
        layer.diff_id if layer else "",
        layer.size if layer else 0,
        layer.uncompressed_size if layer else 0,
    )


def _stopwatch(progress: Progress, task: Task) -> Callable[[str], None]:
    """clock(name): record the time since the last call as phase `name`."""
    last = [time.monotonic()]

    def clock(name: str) -> None:
        now = time.monotonic()
        progress.record(name, round(now - last[0], 3), task)
        last[0] = now

    return clock


def build_derived(
    req: DerivedRequest, env: BuildEnv, layout: Path, progress: Progress
) -> BuildResult:
    """One build of every architecture into a fresh layout."""
    if layout.exists():
        shutil.rmtree(layout)
    oci.init_layout(layout)
    results = []
    try:
        for arch in req.arches:
            task = Task(req.tag, arch.debian, env.name)
            with progress.stage("steps (buildah) and canonical layer", task):
                wd = env.workdir_parent / f"derive-{arch.debian}"
                wd.mkdir(parents=True, exist_ok=True)
                clock = _stopwatch(progress, task)
                try:
                    results.append(_build_arch(req, arch, env, wd, layout, clock))
                except BaseException:
                    progress.finish(task, ok=False)
                    raise
            progress.finish(task)
    finally:
        shutil.rmtree(env.workdir_parent, ignore_errors=True)
    idx = derived_index(req.spec(), [r.manifest for r in results])
    idx_desc = oci.write_json_blob(layout, idx, oci.MT_INDEX)
    top = oci.Descriptor(
        idx_desc.media_type,
        idx_desc.digest,
        idx_desc.size,
        {oci.ANN_REF_NAME: req.tag.rpartition(":")[2]},  # the tag, as base layouts name it
    )
    oci.write_index(layout, [top], {})
    if req.context_embedded is None:  # kept beside the image, for --push to attach
        oci.write_blob(layout, req.context.tar)
    return BuildResult(layout, idx_desc, results, env)


def scratch(prefix: str) -> Path:
    """A new private directory in the scratch directory whose name buildah accepts: it names the
    base image after its layout's path, and a path component ending in '_' (as mkdtemp's
    random suffix may) or holding capitals is no valid image name."""
    while True:
        path = SCRATCH / f"{prefix}-{secrets.token_hex(6)}"
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            continue


def double_build_derived(
    req: DerivedRequest,
    output: Path,
    *,
    once: bool,
    progress: Progress,
    force: bool = False,
    keep_dir: Path | None = None,
    slots: BuildSlots | None = None,
) -> Verdict:
    """keep_dir: where a mismatch's evidence goes (default: beside output); slots: each
    build holds one of the nightly's build slots while it runs."""
    work = scratch("reprobase-derive")
    try:

        def one(env: BuildEnv) -> BuildResult:
            with slots.slot() if slots is not None else contextlib.nullcontext():
                result = build_derived(req, env, work / f"layout-{env.name.lower()}", progress)
            progress.say(f"build {env.name}: index {result.index_digest}")
            return result

        if once:
            a = one(env_a(work / "env"))
            move_layout(a.layout, output, force=force)
            a.layout = output
            return Verdict(a, None)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="derive") as pool:
            fa = pool.submit(one, env_a(work / "env"))
            fb = pool.submit(one, env_b(work / "env"))
            a, b = fa.result(), fb.result()
        verdict = Verdict(a, b, compare_digests(a.digests(), b.digests()))
        if verdict.differences:
            with progress.stage("explaining the difference"):
                verdict.report, verdict.report_text = explain(a.layout, b.layout)
            keep_evidence(verdict, keep_dir or output.with_name(output.name + ".mismatch"), force)
            return verdict
        move_layout(a.layout, output, force=force)
        a.layout = output
        return verdict
    finally:
        shutil.rmtree(work, ignore_errors=True)


def keep_evidence(verdict: Verdict, keep: Path, force: bool) -> None:
    """A mismatch publishes nothing; both layouts and the report are kept for inspection."""
    a, b = verdict.a, verdict.b
    assert b is not None
    with outputs.replacing(keep, outputs.OutputKind.MISMATCH, force=force) as new:
        new.mkdir()
        shutil.move(str(a.layout), str(new / "a"))
        shutil.move(str(b.layout), str(new / "b"))
        (new / "report.json").write_text(json.dumps(verdict.to_json(), indent=2, sort_keys=True))
        (new / "report.txt").write_text(verdict.report_text + "\n")
    a.layout, b.layout = keep / "a", keep / "b"


# -- reproduce ---------------------------------------------------------------------------
@dataclass
class DerivedReproduction:
    reference: str
    spec: DerivedSpec
    published_digest: str
    rebuilt_digest: str
    warnings: list[str] = field(default_factory=list)
    diff_summary: str = ""
    diff: dict[str, Any] | None = None

    @property
    def identical(self) -> bool:
        return self.rebuilt_digest == self.published_digest

    def verdict(self) -> str:
        if self.identical:
            return f"reproduced: identical ({self.published_digest})"
        return f"differs: published {self.published_digest}, rebuilt {self.rebuilt_digest}"

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "kind": "derived",
            "reproduced": self.identical,
            "verdict": self.verdict(),
            "index_digest": self.published_digest,
            "rebuilt_digest": self.rebuilt_digest,
            "image": self.spec.tag,
            "base": self.spec.base,
            "base_digest": self.spec.base_digest,
            "snapshot": self.spec.snapshot,
            "architectures": [a.debian for a in self.spec.arches],
            "packages_from": self.spec.packages_from,
            "buildah": buildah_version(),
            "warnings": self.warnings,
            "diff_summary": self.diff_summary,
            "diff": self.diff,
        }


def derived_spec_of(layout: Path, tag: str | None) -> tuple[DerivedSpec, str] | None:
    """The derived image's self-description and top digest (None: not a derived image)."""
    top = top_descriptor(layout, tag)
    obj = oci.read_json_blob(layout, top.digest)
    ann = {str(k): str(v) for k, v in (obj.get("annotations") or {}).items()}
    if not is_derived(ann):
        return None
    if top.media_type in (oci.MT_INDEX, oci.DOCKER_LIST):
        arches = tuple(platform_arch(m.get("platform")) for m in obj.get("manifests", []))
    else:
        arches = (platform_arch(oci.read_json_blob(layout, obj["config"]["digest"])),)
    return DerivedSpec.from_annotations(ann, arches, str(layout)), top.digest


def recorded_context(spec: DerivedSpec, reference: str, layout: Path, work: Path) -> Context:
    """The build context: embedded, beside the image in its layout, or its referrer."""
    if spec.context_embedded is not None:
        return Context.from_embedded(spec.context_embedded, spec.context_digest)
    path = oci.blob_path(layout, spec.context_digest)
    if not path.exists() and not Path(reference.removeprefix("oci:").split(":")[0]).exists():
        _fetch_context_referrer(reference, layout, spec.context_digest, work)
    if not path.exists():
        raise UserError(
            f"{reference}: the build context {spec.context_digest} is neither embedded nor "
            "found beside the image",
            hint="push derived images with reprobase build --push, which attaches it",
        )
    ctx = Context(path.read_bytes())
    ctx.check(spec.context_digest)
    return ctx


def _fetch_context_referrer(reference: str, layout: Path, digest: str, work: Path) -> None:
    import asyncio

    from factory.registry import list_referrers, parse_reference, pull_to_layout_sync

    top = top_descriptor(layout)
    refs = asyncio.run(list_referrers(reference, top.digest))
    r = parse_reference(reference)
    for d in refs:
        if d.artifact_type == ARTIFACT_TYPE:
            got = pull_to_layout_sync(f"{r.registry}/{r.repository}@{d.digest}", work / "ctx")
            src = oci.blob_path(got, digest)
            if src.exists():
                shutil.copyfile(src, oci.blob_path(layout, digest))
                return


def context_artifact(layout: Path, spec: DerivedSpec) -> tuple[bytes, str, str] | None:
    """(payload, media type, artifact type) of the context referrer, when not embedded."""
    if spec.context_embedded is not None:
        return None
    return oci.blob_path(layout, spec.context_digest).read_bytes(), MEDIA_TYPE, ARTIFACT_TYPE


def reproduce_derived(
    reference: str,
    layout: Path,
    tag: str | None,
    choice: SourceChoice,
    progress: Progress,
    work: Path,
) -> DerivedReproduction:
    """Rebuild a derived image from what it records (no checkout), once, and compare."""
    from factory.source.snapshot import Timestamp
    from factory.source.upstream import preflight, resolve

    found = derived_spec_of(layout, tag)
    if found is None:
        raise UserError(f"{reference}: not a derived image")
    spec, published = found
    context = recorded_context(spec, reference, layout, work)
    base_ref = spec.base if "@" in spec.base.rsplit("/", 1)[-1] else None
    base = resolve_base(base_ref or _pinned(spec.base, spec.base_digest), work / "base")
    if base.digest != spec.base_digest:
        raise UserError(f"{spec.base}: resolves to {base.digest}, the image records "
                        f"{spec.base_digest}")  # fmt: skip
    base = dataclasses.replace(base, reference=spec.base)
    progress.say(f"{spec.tag}: rebuilding FROM {spec.base_title} {spec.base_digest}")
    pin = Timestamp.parse(spec.snapshot)
    with resolve(source_choice_for(base.packages_from, choice), pin, work, base.suite) as src:
        if base.suite:
            preflight(src, base.suite)
        req = make_request(
            spec.containerfile,
            dict(spec.build_args),
            base,
            spec.arches,
            spec.tag,
            context,
            src.apt.proxy,
            Compression.parse((spec.compressor or "gzip").split()[0]),
        )
        rebuilt = build_derived(req, env_a(work / "env"), work / "rebuilt", progress)
    result = DerivedReproduction(reference, spec, published, rebuilt.index_digest)
    if spec.reprobase and spec.reprobase != req.spec().reprobase:
        result.warnings.append(
            f"built with reprobase {spec.reprobase!r}, this machine has "
            f"{req.spec().reprobase!r}: a difference may come from that"
        )
    if not result.identical:
        with progress.stage("explaining the difference"):
            from factory.diffing import diff_images, render_summary

            rep = diff_images(layout, rebuilt.layout)
            result.diff_summary, result.diff = render_summary(rep), rep.to_json()
    return result


def _pinned(base: str, digest: str) -> str:
    """FROM as written, pinned to the digest it resolved to."""
    if base.startswith("oci:"):
        return f"{base}@{digest}"
    name = base.rsplit("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    return f"{name}@{digest}"


def top_annotations(reference: str) -> dict[str, str]:
    """The annotations of the image a reference names, reading only its top object
    (one GET of the manifest for a registry): enough to tell a derived image."""
    ref = reference.removeprefix("oci:")
    path, sep, tag = ref.rpartition(":")
    layout, ltag = (Path(ref), None) if Path(ref).is_dir() else (Path(path), tag or None)
    if Path(ref).is_dir() or (sep and Path(path).is_dir()):
        obj = oci.read_json_blob(layout, top_descriptor(layout, ltag).digest)
    else:
        if reference.startswith("oci:"):
            return {}
        obj = _registry_top(reference)
    return {str(k): str(v) for k, v in (obj.get("annotations") or {}).items()}


def _registry_top(reference: str) -> dict[str, Any]:
    import asyncio

    from factory.registry import parse_reference
    from factory.registry.client import Registries

    async def get() -> dict[str, Any]:
        r = parse_reference(reference)
        async with Registries() as regs:
            m = await regs.repo(r).get_manifest(r.reference)
        obj = json.loads(m.data) if m is not None else {}
        return obj if isinstance(obj, dict) else {}

    return asyncio.run(get())


def reproduce_reference(
    reference: str, choice: SourceChoice, progress: Progress
) -> DerivedReproduction:
    """`reprobase reproduce REF` for a derived image: fetch it, rebuild it, compare."""
    from factory.registry.fetch import fetch

    work = scratch("reprobase-reproduce")
    try:
        choice.validate()
        layout, tag = fetch(reference, work)
        return reproduce_derived(reference, layout, tag, choice, progress, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
