"""Real multi-arch builds (arm64 under qemu), pushed to a real docker-registry, merged
from per-architecture builds, and reproduced from the registry reference alone."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from factory.cli import main
from factory.source import proxyctl
from tests.build_fixtures import TEST_SNAPSHOT, BuildRun, run_build
from tests.registry_fixtures import Registry, registry, skopeo_raw

pytestmark = [pytest.mark.root, pytest.mark.network, pytest.mark.slow]
__all__ = ["registry"]
DAY = TEST_SNAPSHOT[:8]


@pytest.fixture(scope="module")
def multiarch(
    recorded_mirror: proxyctl.ProxyHandle,
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> BuildRun:
    out = tmp_path_factory.mktemp("multiarch") / "layout"
    run = run_build(
        "debian:bookworm",
        out,
        recorded_mirror,
        "--arch",
        "arm64,amd64",
        "--push",
        registry.ref("multi/debian"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_multiarch_index_is_reproducible_with_platforms(multiarch: BuildRun) -> None:
    r = multiarch.result
    assert r["reproducible"] is True
    assert sorted(r["build_a"]["digests"]["platforms"]) == ["linux/amd64", "linux/arm64/v8"]
    assert r["build_a"]["digests"] == r["build_b"]["digests"]
    top = json.loads((multiarch.output / "index.json").read_text())["manifests"][0]
    index = json.loads((multiarch.output / "blobs/sha256" / top["digest"][7:]).read_bytes())
    # canonical order (amd64 first) whatever order --arch listed them in
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]


def test_registry_holds_exactly_the_built_bytes_with_all_tags(
    multiarch: BuildRun, registry: Registry
) -> None:
    digest = multiarch.result["index_digest"]
    assert multiarch.result["pushed"] == [
        {"reference": registry.ref("multi/debian", "bookworm"), "digest": digest}
    ]
    for tag in ("bookworm", f"bookworm-{DAY}", f"bookworm-{TEST_SNAPSHOT}"):
        raw = skopeo_raw(registry.ref("multi/debian", tag))
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest, tag
    # the build report is a referrer (fallback tag scheme on docker-registry 2.8), not an
    # index entry: the index has exactly the two platform manifests
    fallback = json.loads(skopeo_raw(registry.ref("multi/debian", digest.replace(":", "-"))))
    kinds = sorted(
        m.get("annotations", {}).get("org.reprobase.attestation", m["artifactType"])
        for m in fallback["manifests"]
    )
    # beside the build report: each platform's SBOMs and the provenance (factory.attest)
    assert kinds == [
        "application/vnd.reprobase.build-report.v1+json", "provenance",
        "sbom-cyclonedx", "sbom-cyclonedx", "sbom-spdx", "sbom-spdx",
    ]  # fmt: skip
    assert len(json.loads(skopeo_raw(registry.ref("multi/debian", "bookworm")))["manifests"]) == 2


def test_per_arch_builds_merge_into_the_same_index(
    multiarch: BuildRun,
    bookworm_build: BuildRun,
    recorded_mirror: proxyctl.ProxyHandle,
    tmp_path: Path,
) -> None:
    arm = run_build(
        "debian:bookworm", tmp_path / "arm64", recorded_mirror, "--arch", "arm64", "--once"
    )
    assert arm.returncode == 0, arm.stderr[-2000:]
    merged = tmp_path / "merged"
    assert (
        main(
            ["merge", str(tmp_path / "arm64"), str(bookworm_build.output), "--output", str(merged)]
        )
        == 0
    )
    top = json.loads((merged / "index.json").read_text())["manifests"][0]
    assert top["digest"] == multiarch.result["index_digest"]
    # each platform's SBOMs came along: the same bytes the multi-arch double build made
    from factory.attest.store import local_referrers, read_local_artifact

    def sboms(layout: Path) -> list[bytes]:
        return sorted(
            read_local_artifact(layout, d).payload
            for d in local_referrers(layout, top["digest"])
            if d.annotations.get("org.reprobase.attestation", "").startswith("sbom-")
        )

    assert len(sboms(merged)) == 4 and sboms(merged) == sboms(multiarch.output)


def test_reproduce_from_the_registry_reference_alone(
    bookworm_build: BuildRun,
    registry: Registry,
    recorded_mirror: proxyctl.ProxyHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = registry.ref("solo/debian", "bookworm")
    assert main(["publish", str(bookworm_build.output), ref]) == 0
    capsys.readouterr()
    rc = main(["reproduce", ref, "--proxy", recorded_mirror.url, "--upstream", "record", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    assert out[0] == f"reproduced: identical ({bookworm_build.result['index_digest']})"
    result = json.loads(out[-1])
    assert result["reproduced"] is True and result["architectures"] == ["amd64"]
    assert result["snapshot"] == TEST_SNAPSHOT and result["image"] == "debian:bookworm"


def test_reproduce_reports_a_tampered_image(
    bookworm_build: BuildRun,
    tmp_path: Path,
    recorded_mirror: proxyctl.ProxyHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A layout whose recipe label was edited (here: one more package) no longer reproduces."""
    tampered = tmp_path / "tampered"
    subprocess.run(["cp", "-a", str(bookworm_build.output), str(tampered)], check=True)
    from factory.common.canonical import canonical_json
    from factory.image import oci

    top = oci.Descriptor.from_json(oci.read_index(tampered)["manifests"][0])
    index = oci.read_json_blob(tampered, top.digest)
    recipe = json.loads(index["annotations"]["org.reprobase.recipe"])
    recipe["packages"] = ["hello"]
    index["annotations"]["org.reprobase.recipe"] = canonical_json(recipe).decode()
    desc = oci.write_json_blob(tampered, index, oci.MT_INDEX)
    oci.write_index(
        tampered,
        [oci.Descriptor(desc.media_type, desc.digest, desc.size, annotations=top.annotations)],
        {},
    )
    rc = main(["reproduce", str(tampered), "--proxy", recorded_mirror.url, "--upstream", "record"])
    out = capsys.readouterr().out
    assert rc == 1
    assert out.startswith(f"differs: published {desc.digest}, rebuilt sha256:")
    assert "usr/bin/hello" in out or "hello" in out
