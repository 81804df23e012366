"""SBOM facts read from an image's own layers, for images that carry no SBOM (built by an
older reprobase, or elsewhere): the dpkg status and the copyright files, as the build's
chroot hook would have read them. What the layers cannot say is the .debs' SHA-256 (apt's
lists are gone from the image): such an SBOM has no package hashes, and says so.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from factory import __version__
from factory.attest.sbom import Sbom, SbomSubject, sbom_from_facts
from factory.common.errors import UserError
from factory.diffing.streams import open_layer
from factory.image import oci
from factory.image.selfdesc import top_descriptor
from factory.rootfs.debhashes import DOC, STATUS, license_lines
from factory.source.snapshot import Timestamp, snapshot_url

ANN_SNAPSHOT = "org.reprobase.snapshot"
MAX_TEXT = 16 << 20


@dataclass(frozen=True)
class ImageManifest:
    platform: str
    manifest: dict[str, Any]


def manifests(layout: Path, tag: str | None) -> tuple[oci.Descriptor, list[ImageManifest]]:
    top = top_descriptor(layout, tag)
    obj = oci.read_json_blob(layout, top.digest)
    if "manifests" not in obj:
        return top, [ImageManifest("linux/?", obj)]
    out = []
    for d in obj["manifests"]:
        p = d.get("platform") or {}
        plat = "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)
        out.append(ImageManifest(plat, oci.read_json_blob(layout, d["digest"])))
    return top, out


def _apply(tf: tarfile.TarFile, facts: dict[str, Any]) -> None:
    """One layer over the facts so far: later layers win, whiteouts remove (OCI layer spec)."""
    for m in tf:
        path = PurePosixPath(m.name.removeprefix("./"))
        if path.name.startswith(".wh."):
            gone = str(path.parent / path.name.removeprefix(".wh."))
            if gone == STATUS:
                facts["status"] = ""
            elif str(path.parent) == DOC:
                facts["copyright"].pop(path.name.removeprefix(".wh."), None)
            continue
        name = str(path)
        if name == STATUS and m.isfile() and m.size <= MAX_TEXT:
            f = tf.extractfile(m)
            facts["status"] = f.read().decode("utf-8", "replace") if f else ""
        elif str(path.parent.parent) == DOC and path.name == "copyright" and m.isfile():
            f = tf.extractfile(m)
            if f is not None and m.size <= MAX_TEXT:
                facts["copyright"][path.parent.name] = license_lines(
                    f.read().decode("utf-8", "replace")
                )
        elif str(path.parent) == DOC and m.issym():
            facts["copyright"][path.name] = "->" + PurePosixPath(m.linkname).name


def facts_from_layers(layout: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    facts: dict[str, Any] = {"status": "", "copyright": {}, "debs": {}, "releases": []}
    for layer in manifest.get("layers", []):
        path = oci.blob_path(layout, layer["digest"])

        def opener(p: Path = path) -> io.BufferedReader:
            return p.open("rb")

        try:
            with open_layer(opener) as stream, tarfile.open(fileobj=stream.reader, mode="r|") as tf:
                _apply(tf, facts)
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise UserError(
                f"{layout}: layer {layer['digest']} cannot be read ({type(exc).__name__}: {exc})",
                hint="the layout is damaged: rebuild it or re-pull it",
            ) from None
    facts["copyright"] = dict(sorted(facts["copyright"].items()))
    return facts


def sbom_from_image(layout: Path, tag: str | None, arch: str | None) -> tuple[str, Sbom]:
    top, found = manifests(layout, tag)
    chosen = [m for m in found if arch is None or m.platform.split("/")[1:2] == [arch]]
    if len(chosen) != 1:
        plats = ", ".join(m.platform for m in found)
        raise UserError(
            f"{layout}: the image has {plats}" + (f", not {arch}" if arch else ""),
            hint="choose one with --arch",
        )
    m = chosen[0]
    ann = {**top.annotations, **oci.read_json_blob(layout, top.digest).get("annotations", {})}
    snapshot = ann.get(ANN_SNAPSHOT, "")
    try:
        pin: Timestamp | None = Timestamp.parse(snapshot) if snapshot else None
    except UserError:
        pin = None
    subject = SbomSubject(
        image=ann.get(oci.ANN_REF_NAME, "image"),
        arch=m.platform.split("/")[1] if "/" in m.platform else "",
        platform=m.platform,
        snapshot=pin.text if pin else "unknown",
        epoch=pin.epoch if pin else 0,
        repositories=tuple((a, snapshot_url(a, pin)) for a in ("debian", "debian-security"))
        if pin
        else (),
        tool_version=__version__,
    )
    return m.platform, sbom_from_facts(facts_from_layers(layout, m.manifest), subject)
