"""Resolving a command-line argument to a blob store, in one documented order:

1. an existing directory: an OCI image layout (oci-layout + index.json), or
   LAYOUT:TAG for the image of that tag in a layout (a store with many tags);
2. an existing file: a tar archive, compressed or not — an OCI archive (index.json +
   oci-layout inside) or a `docker save` archive (manifest.json inside);
3. anything else that looks like an image reference: pulled through the publishing
   client, `factory.registry.pull_to_layout(ref, dest)`, into a temporary layout.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

from factory.common.errors import UserError
from factory.diffing.docker import DockerStore
from factory.diffing.stores import ArchiveLayoutStore, BlobSource, LayoutStore, TarTree
from factory.diffing.streams import StreamCodec
from factory.image import oci

# OCI distribution reference grammar, loosely: [host[:port]/]path[:tag][@digest]
REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[\w][\w.-]{0,127})?"
    r"(?:@sha256:[0-9a-f]{64})?$"
)


def resolve(spec: str, stack: ExitStack) -> BlobSource:
    path = Path(spec)
    if path.is_dir():
        if (path / "manifest.json").is_file() and not (path / "oci-layout").is_file():
            raise UserError(
                f"{spec}: an extracted docker save directory is not supported",
                hint="pass the docker save tar itself",
            )
        store = LayoutStore(path, spec)
        store.index()  # refuse a directory that is not a layout now, not halfway
        return store
    if path.is_file():
        return open_archive(path, spec, stack)
    if path.exists():
        raise UserError(f"{spec}: neither a directory nor a file")
    base, tag = oci.split_layout(spec)
    if tag is not None:  # LAYOUT:TAG
        store = LayoutStore(base, spec, tag)
        store.index()
        return store
    if (
        spec.startswith(("/", ".", "~"))
        or spec.endswith((".tar", ".tar.gz", ".tgz"))
        or not REFERENCE.match(spec)
    ):
        raise UserError(
            f"{spec}: no such file or directory",
            hint="pass an OCI layout directory, an image archive tar or a registry reference",
        )
    return pull(spec, stack)


def open_archive(path: Path, label: str, stack: ExitStack) -> BlobSource:
    with path.open("rb") as f:
        head = f.read(512)
    comp = StreamCodec.sniff(head)
    if comp is not StreamCodec.NONE:
        path = _decompress(path, comp, stack)
    tree = TarTree(path, label)
    if tree.has("index.json") and tree.has("oci-layout"):
        return ArchiveLayoutStore(tree)
    if tree.has("manifest.json"):
        return DockerStore(tree)
    raise UserError(
        f"{label}: a tar archive but neither an OCI archive nor a docker save archive",
        hint="it holds no index.json + oci-layout and no manifest.json",
    )


def _decompress(path: Path, comp: StreamCodec, stack: ExitStack) -> Path:
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="reprobase-diff-")))
    out = tmp / "archive.tar"
    with path.open("rb") as src, comp.decompress(src) as plain, out.open("wb") as dst:
        shutil.copyfileobj(plain, dst, 1 << 20)
    return out


def pull(ref: str, stack: ExitStack) -> BlobSource:
    from factory.registry.pull import pull_to_layout_sync

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="reprobase-pull-")))
    return LayoutStore(pull_to_layout_sync(ref, tmp / "layout"), ref)
