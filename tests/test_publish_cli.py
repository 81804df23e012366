"""`reprobase publish`: the command line, archives for docker/podman load, user errors."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from factory.cli import main
from factory.common import runner
from factory.common.canonical import sha256_digest
from factory.image.oci import Descriptor, read_index
from factory.registry import write_archive
from tests.registry_fixtures import Registry, free_port, layout, registry, skopeo_raw, unique_repo

__all__ = ["layout", "registry"]


def test_publish_json_and_progress(
    registry: Registry, layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo()
    ref = registry.ref(repo, "bookworm")
    assert main(["publish", str(layout), ref, "--tag", "bookworm-20250101", "--json"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    top = Descriptor.from_json(read_index(layout)["manifests"][0])
    assert summary["digest"] == top.digest
    assert summary["uploaded_blobs"] == 6
    assert f"{registry.host}/{repo}:bookworm-20250101" in summary["references"]
    assert "uploaded" in err and "tag bookworm" in err
    assert sha256_digest(skopeo_raw(registry.ref(repo, "bookworm-20250101"))) == top.digest
    assert main(["publish", str(layout), ref, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["uploaded_blobs"] == 0


def test_connection_refused_is_one_line(layout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"127.0.0.1:{free_port()}/x/y:z"
    assert main(["publish", str(layout), ref]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot reach registry") and "hint:" in err[-1]


def test_nothing_to_do_and_not_a_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["publish", str(tmp_path)]) == 2
    assert "nothing to do" in capsys.readouterr().err
    assert main(["publish", str(tmp_path), "--output-archive", str(tmp_path / "x.tar")]) == 2
    assert "not an OCI image layout" in capsys.readouterr().err
    assert main(["publish", str(tmp_path), "127.0.0.1:1/x:y"]) == 2
    assert "not an OCI image layout" in capsys.readouterr().err


def test_help_documents_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["publish", "--help"])
    out = capsys.readouterr().out
    for var in (
        "REPROBASE_REGISTRY_USER",
        "REPROBASE_REGISTRY_PASSWORD",
        "REPROBASE_INSECURE_REGISTRIES",
    ):
        assert var in out


def test_archive_is_reproducible_and_readable(layout: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    write_archive(layout, a, "reprobase/debian:bookworm")
    write_archive(layout, b, "reprobase/debian:bookworm")
    assert a.read_bytes() == b.read_bytes()
    top = Descriptor.from_json(read_index(layout)["manifests"][0])
    # skopeo reads it both as an OCI archive (all platforms) and as a docker archive
    raw = runner.run(["skopeo", "inspect", "--raw", f"oci-archive:{a}"], capture=True).stdout
    assert sha256_digest(raw) == top.digest
    info = json.loads(runner.output(["skopeo", "inspect", f"docker-archive:{a}"]))
    assert info["Os"] == "linux" and len(info["Layers"]) == 2


@pytest.mark.skipif(
    shutil.which("podman") is None, reason="podman not installed (apt-get install podman)"
)
def test_podman_loads_archive(
    layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "img.tar"
    name = "localhost/reprobase/debian:bookworm"
    assert (
        main(["publish", str(layout), "--output-archive", str(archive), "--archive-name", name])
        == 0
    )
    assert "archive written" in capsys.readouterr().err
    # A private store: the machine's images are left alone (runroot must be < 50 chars).
    runroot = Path(tempfile.mkdtemp(prefix="rb-podman-"))
    store = ["--root", str(tmp_path / "root"), "--runroot", str(runroot), "--storage-driver", "vfs"]
    try:
        out = runner.output(["podman", *store, "load", "-i", str(archive)])
        assert name in out
        images = runner.output(["podman", *store, "images", "--format", "{{.Repository}}:{{.Tag}}"])
        assert name in images
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
