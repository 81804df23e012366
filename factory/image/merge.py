"""Merge per-architecture layouts (e.g. from native CI runners) into one multi-arch index.

The merged index is byte-identical to the index a single multi-arch build would
write: same annotations, manifests in the canonical architecture order.
"""

from __future__ import annotations

from pathlib import Path

from factory.common import outputs
from factory.common.arch import Architecture
from factory.common.errors import UserError
from factory.image import oci
from factory.image.config import image_index
from factory.image.selfdesc import platform_arch, top_descriptor


def _entries(
    layout: Path, image_tag: str | None = None
) -> tuple[dict[str, str], list[oci.Descriptor], str]:
    top = top_descriptor(layout, image_tag)
    obj = oci.read_json_blob(layout, top.digest)
    if top.media_type != oci.MT_INDEX:
        raise UserError(f"{layout}: expected an image index (a reprobase build output)")
    tag = top.annotations.get(oci.ANN_REF_NAME, "")
    return (
        dict(obj.get("annotations") or {}),
        [oci.Descriptor.from_json(m) for m in obj["manifests"]],
        tag,
    )


def merge_layouts(
    layouts: list[Path | tuple[Path, str | None]], output: Path, *, force: bool = False
) -> oci.Descriptor:
    """layouts: directories, or (directory, tag) for the image of that tag in one."""
    if not layouts:
        raise UserError("nothing to merge", hint="give two or more layout directories")
    named = [(x, None) if isinstance(x, Path) else x for x in layouts]
    annotations, _, tag = _entries(*named[0])
    by_arch: dict[Architecture, tuple[Path, oci.Descriptor]] = {}
    for layout, image_tag in named:
        ann, manifests, _ = _entries(layout, image_tag)
        if ann != annotations:
            diff = sorted(
                k for k in set(ann) | set(annotations) if ann.get(k) != annotations.get(k)
            )
            raise UserError(f"{layout}: not the same image as {named[0][0]} (differs in {diff})")
        for m in manifests:
            arch = platform_arch(m.platform)
            if arch in by_arch and by_arch[arch][1].digest != m.digest:
                raise UserError(f"{arch.debian} given twice with different manifests")
            by_arch[arch] = (layout, m)
    manifests = [by_arch[a][1] for a in Architecture.ordered(by_arch)]
    with outputs.replacing(output, outputs.OutputKind.LAYOUT, force=force) as tmp:
        oci.init_layout(tmp)
        for _layout, m in by_arch.values():
            copy_image_blobs(_layout, m, tmp)
        idx = oci.write_json_blob(tmp, image_index(manifests, annotations), oci.MT_INDEX)
        top = oci.Descriptor(
            idx.media_type, idx.digest, idx.size, annotations={oci.ANN_REF_NAME: tag}
        )
        oci.write_index(tmp, [top], {})
    return idx


def copy_image_blobs(layout: Path, manifest: oci.Descriptor, dst: Path) -> None:
    """Copy one image's manifest, config and layers, each checked against its descriptor."""
    man = oci.read_json_blob(layout, manifest.digest)
    oci.write_blob(dst, oci.read_blob(layout, manifest.digest))
    for d in [man["config"], *man.get("layers", [])]:
        oci.copy_blob(layout, oci.Descriptor.from_json(d), dst)
