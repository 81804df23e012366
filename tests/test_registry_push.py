"""Pushing to and pulling from a real registry (docker-registry on 127.0.0.1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from factory.common.canonical import sha256_digest
from factory.common.errors import UserError
from factory.image.oci import MT_INDEX, Descriptor, blob_path, read_index
from factory.registry import (
    ClientConfig,
    attach_referrer_sync,
    fallback_tag,
    list_referrers,
    pull_to_layout_sync,
    push_layout_sync,
)
from tests.registry_fixtures import (
    Registry,
    layout,
    make_layout,
    registry,
    skopeo_raw,
    start_registry,
    unique_repo,
)

__all__ = ["layout", "registry"]  # fixtures used by name


def _top(path: Path) -> Descriptor:
    return Descriptor.from_json(read_index(path)["manifests"][0])


def test_push_digest_equals_local_and_second_push_uploads_nothing(
    registry: Registry, layout: Path
) -> None:
    repo = unique_repo()
    ref = registry.ref(repo, "bookworm")
    lines: list[str] = []
    first = push_layout_sync(
        layout, [ref], tags=["bookworm-20250101", "20250101T000000Z"], progress=lines.append
    )
    assert first.digest == _top(layout).digest
    assert first.uploaded_blobs == 6 and first.skipped_blobs == 0
    for tag in ("bookworm", "bookworm-20250101", "20250101T000000Z"):
        assert sha256_digest(skopeo_raw(registry.ref(repo, tag))) == first.digest
    # every platform manifest too, by digest
    index = json.loads(skopeo_raw(registry.ref(repo, "bookworm")))
    for m in index["manifests"]:
        assert sha256_digest(skopeo_raw(f"{registry.host}/{repo}@{m['digest']}")) == m["digest"]
    assert any("uploaded" in line for line in lines)
    second = push_layout_sync(layout, [ref])
    assert (second.uploaded_blobs, second.mounted_blobs, second.bytes_uploaded) == (0, 0, 0)
    assert second.skipped_blobs == 6 and second.digest == first.digest


def test_push_to_two_repos_mounts(registry: Registry, layout: Path) -> None:
    a, b = unique_repo(), unique_repo()
    result = push_layout_sync(layout, [registry.ref(a, "x"), registry.ref(b, "y")])
    assert (result.uploaded_blobs, result.mounted_blobs) == (6, 6)
    assert sha256_digest(skopeo_raw(registry.ref(b, "y"))) == result.digest


def test_single_manifest_and_chunked_upload(registry: Registry, tmp_path: Path) -> None:
    top = make_layout(
        tmp_path, platforms=("arm64",), layer_sizes=(3_000_000,), as_index=False, seed=7
    )
    repo = unique_repo()
    config = ClientConfig(chunk_size=1 << 20)  # a 3 MB layer goes up in 3+ PATCH chunks
    result = push_layout_sync(tmp_path, [registry.ref(repo, "arm")], config=config)
    assert result.digest == top.digest
    assert sha256_digest(skopeo_raw(registry.ref(repo, "arm"))) == top.digest
    assert any("PATCH" in line for line in registry.log_lines)


def test_pull_roundtrip_all_platforms(registry: Registry, layout: Path, tmp_path: Path) -> None:
    repo = unique_repo()
    pushed = push_layout_sync(layout, [registry.ref(repo, "bookworm")])
    dest = pull_to_layout_sync(registry.ref(repo, "bookworm"), tmp_path / "pulled")
    entry = read_index(dest)["manifests"]
    assert entry == [
        {
            "annotations": {"org.opencontainers.image.ref.name": "bookworm"},
            "digest": pushed.digest,
            "mediaType": MT_INDEX,
            "size": _top(layout).size,
        }
    ]
    ours = sorted(p.name for p in (layout / "blobs" / "sha256").iterdir())
    theirs = sorted(p.name for p in (dest / "blobs" / "sha256").iterdir())
    assert ours == theirs
    for name in ours:
        assert (layout / "blobs/sha256" / name).read_bytes() == (
            dest / "blobs/sha256" / name
        ).read_bytes()
    # and by digest, into the same layout again: nothing to fetch, still valid
    pull_to_layout_sync(f"{registry.host}/{repo}@{pushed.digest}", dest)
    assert "annotations" not in read_index(dest)["manifests"][0]


def test_pull_missing_tag_is_one_line_error(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        pull_to_layout_sync(registry.ref(unique_repo(), "nope"), tmp_path / "p")


def test_corrupt_layout_blob_is_refused_and_tag_not_written(
    registry: Registry, tmp_path: Path
) -> None:
    make_layout(tmp_path, platforms=("amd64",), layer_sizes=(50_000,), seed=3)
    index = json.loads(blob_path(tmp_path, _top(tmp_path).digest).read_bytes())
    manifest = json.loads(blob_path(tmp_path, index["manifests"][0]["digest"]).read_bytes())
    layer = blob_path(tmp_path, manifest["layers"][0]["digest"])
    data = bytearray(layer.read_bytes())
    data[100] ^= 0xFF
    layer.write_bytes(bytes(data))
    repo = unique_repo()
    # refused before the upload, naming the blob (the registry would answer HTTP 400)
    with pytest.raises(UserError, match=f"blob {manifest['layers'][0]['digest']} is corrupt"):
        push_layout_sync(tmp_path, [registry.ref(repo, "t")])
    with pytest.raises(UserError):
        skopeo_raw(registry.ref(repo, "t"))


def test_build_report_as_referrer_with_fallback_tag(registry: Registry, layout: Path) -> None:
    repo = unique_repo()
    ref = registry.ref(repo, "bookworm")
    pushed = push_layout_sync(layout, [ref])
    subject = _top(layout)
    report = b'{"a":"sha256:1","b":"sha256:1","equal":true}'
    ann = {"org.opencontainers.image.created": "2025-01-01T00:00:00Z"}
    art = "application/vnd.reprobase.build-report.v1+json"
    digest = attach_referrer_sync(ref, subject, art, report, "application/json", ann)
    again = attach_referrer_sync(ref, subject, art, report, "application/json", ann)
    assert again == digest  # same report, same artifact, listed once
    manifest = json.loads(skopeo_raw(f"{registry.host}/{repo}@{digest}"))
    assert manifest["subject"]["digest"] == pushed.digest
    assert manifest["artifactType"] == art
    listed = json.loads(skopeo_raw(registry.ref(repo, fallback_tag(pushed.digest))))
    assert [m["digest"] for m in listed["manifests"]] == [digest]
    assert listed["manifests"][0]["artifactType"] == art
    import asyncio

    found = asyncio.run(list_referrers(ref, pushed.digest))
    assert [d.digest for d in found] == [digest]
    # the image's own index is unchanged
    assert sha256_digest(skopeo_raw(ref)) == pushed.digest


def test_killed_registry_moves_no_tag_and_rerun_completes(tmp_path: Path) -> None:
    reg = start_registry(tmp_path / "reg")
    try:
        old = tmp_path / "old"
        make_layout(old, layer_sizes=(100_000,), seed=1)
        new = tmp_path / "new"
        make_layout(new, layer_sizes=(3_000_000, 3_000_000, 2_000_000), seed=2)
        repo = unique_repo()
        ref = reg.ref(repo, "bookworm")
        old_digest = push_layout_sync(old, [ref]).digest

        def kill_after_first_upload(line: str) -> None:
            if "uploaded" in line:
                reg.kill()

        fast = ClientConfig(attempts=2, backoff_min=0.01, backoff_max=0.05)
        with pytest.raises(UserError, match="cannot reach registry"):
            push_layout_sync(
                new, [ref], tags=["extra"], progress=kill_after_first_upload, config=fast
            )
        reg.start()  # same storage, same port
        assert sha256_digest(skopeo_raw(ref)) == old_digest
        with pytest.raises(UserError):
            skopeo_raw(reg.ref(repo, "extra"))
        rerun = push_layout_sync(new, [ref], tags=["extra"])
        assert rerun.skipped_blobs >= 1  # what made it before the kill is not sent again
        assert sha256_digest(skopeo_raw(ref)) == rerun.digest == _top(new).digest
        assert sha256_digest(skopeo_raw(reg.ref(repo, "extra"))) == rerun.digest
    finally:
        reg.stop()


def test_digest_ref_must_match_layout(registry: Registry, layout: Path) -> None:
    with pytest.raises(UserError, match="names digest"):
        push_layout_sync(layout, [f"{registry.host}/{unique_repo()}@sha256:{'0' * 64}"])


def test_copy_of_layout_has_same_digest(registry: Registry, layout: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(layout, copy)
    repo = unique_repo()
    a = push_layout_sync(layout, [registry.ref(repo, "a")])
    b = push_layout_sync(copy, [registry.ref(repo, "b")])
    assert a.digest == b.digest and b.uploaded_blobs == 0
