"""`reprobase sbom` on an image that carries no SBOM: made from its own layers."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from factory.attest.fromimage import sbom_from_image
from factory.cli import main
from factory.common.canonical import sha256_digest
from factory.image import oci
from tests.attest_fixtures import DEP5, STATUS


def _layer(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in sorted((links or {}).items()):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return gzip.compress(buf.getvalue(), mtime=0)


def make_image(layout: Path) -> None:
    oci.init_layout(layout)
    base = _layer(
        {"var/lib/dpkg/status": STATUS.encode(), "usr/share/doc/libc6/copyright": DEP5.encode(),
         "usr/share/doc/base-files/copyright": b"free form\n"},
        {"usr/share/doc/libgcc-s1": "gcc-12-base"},
    )  # fmt: skip
    top = _layer({"usr/share/doc/.wh.base-files": b""})  # a derived image removed it
    layers = []
    for blob in (base, top):
        digest = oci.write_blob(layout, blob)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": digest, "size": len(blob)})  # fmt: skip
    cfg = oci.write_json_blob(layout, {"architecture": "amd64", "os": "linux"}, oci.MT_CONFIG)
    man = oci.write_json_blob(
        layout,
        {"schemaVersion": 2, "mediaType": oci.MT_MANIFEST, "config": cfg.to_json(),
         "layers": layers},
        oci.MT_MANIFEST,
        platform={"architecture": "amd64", "os": "linux"},
    )  # fmt: skip
    idx = oci.write_json_blob(
        layout,
        {"schemaVersion": 2, "mediaType": oci.MT_INDEX, "manifests": [man.to_json()],
         "annotations": {"org.reprobase.snapshot": "20261201T000000Z"}},
        oci.MT_INDEX,
    )  # fmt: skip
    oci.write_index(layout, [oci.Descriptor(idx.media_type, idx.digest, idx.size)], {})


def test_sbom_from_layers(tmp_path: Path) -> None:
    make_image(tmp_path / "img")
    platform, sbom = sbom_from_image(tmp_path / "img", None, None)
    assert platform == "linux/amd64"
    assert [p.pkg.name for p in sbom.packages] == ["base-files", "libc6", "libgcc-s1"]
    assert sbom.counts()["with_sha256"] == 0  # apt's lists are not in an image
    by = {p.pkg.name: p for p in sbom.packages}
    assert by["libc6"].licenses and not by["base-files"].copyright_file  # whited out
    assert "20261201T000000Z" in by["libc6"].purl(by["libc6"].repository_url(sbom.subject))


def test_sbom_command_falls_back_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_image(tmp_path / "img")
    assert main(["sbom", str(tmp_path / "img"), "--format", "cyclonedx", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("warning: no cyclonedx SBOM is attached") and err.count("\n") == 1
    doc = json.loads(out)
    assert doc["attached"] is False and len(doc["sbom"]["components"]) == 3
    assert doc["sbom_digest"] == sha256_digest(
        json.dumps(doc["sbom"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    with pytest.raises(SystemExit):
        main(["sbom", str(tmp_path / "img"), "--arch"])  # argparse: one line, exit 2
