"""The pure OCI chain, from a fixed root filesystem tar to an image index.

tar -> canonical layer -> config -> manifest -> index (factory.image.assemble), its
self-description read back (read_spec), the double build's comparison, and merging
per-architecture layouts. The golden digests pin the whole chain: the layer bytes are
checked on other CPUs and on arm64 by tests/test_hostindep.py; the JSON around them is
canonical, so these digests must be the same on every machine.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from factory.common.arch import Architecture
from factory.common.canonical import canonical_json
from factory.common.errors import UserError
from factory.image import config as image_config_module
from factory.image import oci
from factory.image.assemble import ArchImage, assemble_arch, assemble_index
from factory.image.compress import Compression
from factory.image.config import Provenance
from factory.image.merge import merge_layouts
from factory.image.selfdesc import read_spec
from factory.pipeline.double import compare_digests
from factory.recipes.recipe import Recipe, recipe_from_dict
from factory.source.origin import Origin
from factory.source.snapshot import Timestamp

GOLDEN = Path(__file__).parent / "golden" / "whole-image.json"
PIN = Timestamp.parse("20250101T000000Z")
STATUS = (
    "Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4\n\n"
    "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n\n"
    "Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n"
)


def rootfs_tar(path: Path, mtime: int = 1_750_000_000) -> Path:
    """A small root filesystem as mmdebstrap would hand it over, in a scrambled order
    and with build-time mtimes, owners and modes the canonical writer must fix."""

    def add(tf: tarfile.TarFile, name: str, kind: bytes, data: bytes = b"", **kw: object) -> None:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mtime, ti.uname, ti.gname = kind, mtime, "builder", "builder"
        for k, v in kw.items():
            setattr(ti, k, v)
        if kind == tarfile.REGTYPE:
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        else:
            tf.addfile(ti)

    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        add(tf, "./usr/bin/", tarfile.DIRTYPE, mode=0o755)
        add(tf, "./var/lib/dpkg/status", tarfile.REGTYPE, STATUS.encode(), mode=0o644)
        add(tf, "./etc/", tarfile.DIRTYPE, mode=0o755)
        add(tf, "./usr/bin/hello", tarfile.REGTYPE, b"#!/bin/sh\necho hi\n", mode=0o755)
        add(tf, "./etc/hostname", tarfile.REGTYPE, b"golden\n", mode=0o644)
        add(tf, "./usr/bin/hi", tarfile.SYMTYPE, linkname="hello")
        add(tf, "./usr/bin/hello2", tarfile.LNKTYPE, linkname="./usr/bin/hello")
        add(tf, "./var/", tarfile.DIRTYPE, mode=0o755)
        add(tf, "./var/lib/", tarfile.DIRTYPE, mode=0o755)
        add(tf, "./var/lib/dpkg/", tarfile.DIRTYPE, mode=0o755)
        add(tf, "./usr/", tarfile.DIRTYPE, mode=0o755)
    return path


def recipe(compression: str = "gzip") -> Recipe:
    return recipe_from_dict(
        {"name": "debian", "tag": "golden", "suite": "bookworm", "compression": compression,
         "description": "a fixed image for the golden test", "architectures": ["amd64"]},
        "golden",
    )  # fmt: skip


def provenance(rec: Recipe) -> Provenance:
    comp = Compression.parse(rec.compression)
    return Provenance(Origin.SNAPSHOT, None, "1.3.5", comp.describe())


@pytest.fixture(autouse=True)
def fixed_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # The labels carry reprobase's version; a release must not move the golden digests.
    monkeypatch.setattr(image_config_module, "__version__", "0.0.0-golden")


def assemble(tmp: Path, arches: list[Architecture], rec: Recipe | None = None) -> Path:
    rec = rec or recipe()
    layout = tmp / "layout"
    oci.init_layout(layout)
    images: list[ArchImage] = []
    for arch in arches:
        tar = rootfs_tar(tmp / f"rootfs-{arch.debian}.tar")
        images.append(assemble_arch(layout, rec, PIN, arch, provenance(rec), tar))
    assemble_index(layout, rec, PIN, provenance(rec), images)
    return layout


def digests(layout: Path) -> dict[str, object]:
    top = oci.Descriptor.from_json(oci.read_index(layout)["manifests"][0])
    index = oci.read_json_blob(layout, top.digest)
    out: dict[str, object] = {"index": top.digest}
    for m in index["manifests"]:
        man = oci.read_json_blob(layout, m["digest"])
        out[oci.Descriptor.from_json(m).platform["architecture"]] = {  # type: ignore[index]
            "manifest": m["digest"],
            "config": man["config"]["digest"],
            "layer": man["layers"][0]["digest"],
            "layer_size": man["layers"][0]["size"],
        }
    return out


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_whole_image_golden(tmp_path: Path, compression: str) -> None:
    got = digests(assemble(tmp_path, [Architecture.AMD64, Architecture.ARM64], recipe(compression)))
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("REPROBASE_UPDATE_GOLDEN"):
        golden[compression] = got
        GOLDEN.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
    assert got == golden[compression], (
        "the image chain's bytes changed: find out why (compressor version? tar format? "
        "JSON?) before re-recording with REPROBASE_UPDATE_GOLDEN=1"
    )


def test_same_inputs_same_bytes_whatever_the_tar_says(tmp_path: Path) -> None:
    a = assemble(tmp_path / "a", [Architecture.AMD64])
    # other build-time mtimes (after the pin) in the rootfs tar: clamped to SOURCE_DATE_EPOCH
    rec = recipe()
    layout = tmp_path / "b" / "layout"
    oci.init_layout(layout)
    tar = rootfs_tar(tmp_path / "late.tar", mtime=1_800_000_000)
    img = assemble_arch(layout, rec, PIN, Architecture.AMD64, provenance(rec), tar)
    assemble_index(layout, rec, PIN, provenance(rec), [img])
    assert digests(a) == digests(layout)
    assert (a / "index.json").read_bytes() == (layout / "index.json").read_bytes()


def test_config_manifest_index_fit_together(tmp_path: Path) -> None:
    layout = assemble(tmp_path, [Architecture.ARM64, Architecture.AMD64])
    top = oci.Descriptor.from_json(oci.read_index(layout)["manifests"][0])
    assert top.annotations == {oci.ANN_REF_NAME: "golden"}
    raw_index = oci.read_blob(layout, top.digest)
    assert raw_index == canonical_json(json.loads(raw_index))  # canonical JSON on disk
    index = json.loads(raw_index)
    assert index["mediaType"] == oci.MT_INDEX
    # the canonical architecture order, whatever order they were built in
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    assert index["manifests"][1]["platform"]["variant"] == "v8"
    for m in index["manifests"]:
        raw = oci.read_blob(layout, m["digest"])
        assert len(raw) == m["size"]
        man = json.loads(raw)
        cfg_raw = oci.read_blob(layout, man["config"]["digest"])
        assert len(cfg_raw) == man["config"]["size"]
        cfg = json.loads(cfg_raw)
        assert cfg["created"] == "2025-01-01T00:00:00Z"
        assert cfg["architecture"] == m["platform"]["architecture"]
        layer = man["layers"][0]
        assert layer["mediaType"] == oci.MT_LAYER_GZIP
        assert oci.blob_path(layout, layer["digest"]).stat().st_size == layer["size"]
        assert cfg["rootfs"]["diff_ids"][0].startswith("sha256:")
        assert man["annotations"] == index["annotations"]
        labels = cfg["config"]["Labels"]
        assert labels["org.reprobase.packages-from"] == "snapshot.debian.org"
        assert labels["org.reprobase.rebuild"].startswith("reprobase build debian:golden ")
    # nothing else in the layout: every blob is reachable from the top
    reachable = {d.digest for d in oci.reachable(layout, top)}
    on_disk = {"sha256:" + p.name for p in (layout / "blobs" / "sha256").iterdir()}
    assert on_disk == reachable


def test_read_spec_round_trip(tmp_path: Path) -> None:
    layout = assemble(tmp_path, [Architecture.AMD64, Architecture.ARM64])
    spec = read_spec(layout)
    assert spec.recipe == recipe()
    assert spec.recipe.digest() == recipe().digest()
    assert spec.pin == PIN
    assert spec.arches == (Architecture.AMD64, Architecture.ARM64)
    assert spec.packages_from is Origin.SNAPSHOT and spec.mirror is None
    assert spec.index_digest == digests(layout)["index"]
    assert spec.versions == {
        "reprobase": "0.0.0-golden",
        "mmdebstrap": "1.3.5",
        "compressor": Compression.GZIP.describe(),
    }
    assert read_spec(layout, "golden") == spec
    with pytest.raises(UserError):
        read_spec(layout, "nosuchtag")


def test_read_spec_refuses_an_unknown_origin(tmp_path: Path) -> None:
    rec = recipe()
    layout = tmp_path / "layout"
    oci.init_layout(layout)
    prov = provenance(rec)
    img = assemble_arch(layout, rec, PIN, Architecture.AMD64, prov, rootfs_tar(tmp_path / "r.tar"))
    assemble_index(layout, rec, PIN, prov, [img])
    top = oci.Descriptor.from_json(oci.read_index(layout)["manifests"][0])
    index = oci.read_json_blob(layout, top.digest)
    index["annotations"]["org.reprobase.packages-from"] = "somewhere"
    forged = oci.write_json_blob(layout, index, oci.MT_INDEX)
    oci.write_index(layout, [forged], {})
    with pytest.raises(UserError, match="unknown packages-from 'somewhere'"):
        read_spec(layout)


def _digests(index: str, **platforms: dict[str, str]) -> dict[str, object]:
    return {"index": index, "platforms": platforms}


def test_compare_digests() -> None:
    p = {"manifest": "m", "config": "c", "layer": "l", "diff_id": "d", "size": 1}
    assert compare_digests(_digests("i", amd64=p), _digests("i", amd64=dict(p))) == []
    other = {**p, "layer": "l2", "diff_id": "d2", "size": 2}
    assert compare_digests(_digests("i", amd64=p), _digests("j", amd64=other)) == [
        "index: i != j",
        "amd64 layer: l != l2",
        "amd64 diff_id: d != d2",
    ]
    assert compare_digests(_digests("i", amd64=p, arm64=p), _digests("j", amd64=p)) == [
        "index: i != j",
        "arm64: only in build A",
    ]


def test_merge_gives_the_index_of_one_multi_arch_build(tmp_path: Path) -> None:
    both = assemble(tmp_path / "both", [Architecture.AMD64, Architecture.ARM64])
    # per-arch layouts, given in the "wrong" order
    arm = assemble(tmp_path / "arm", [Architecture.ARM64])
    amd = assemble(tmp_path / "amd", [Architecture.AMD64])
    merged = merge_layouts([arm, amd], tmp_path / "merged")
    assert merged.digest == digests(both)["index"]
    assert digests(tmp_path / "merged") == digests(both)
    with pytest.raises(UserError, match="not the same image"):
        merge_layouts(
            [amd, assemble(tmp_path / "zstd", [Architecture.ARM64], recipe("zstd"))],
            tmp_path / "refused",
        )
    assert not (tmp_path / "refused").exists()
