"""Attestations of a real build: SBOMs from the image's own dpkg status, validated by
spdx-tools and cyclonedx-python-lib, identical across the double build; provenance;
referrers in a real docker-registry that leave the index digest alone; and a quorum of
signed rebuild attestations checked by `reprobase verify` and by securesystemslib.

One real rebuild (`reproduce --attest --push`) is made; the other signers sign through
the library or the --sign-command hook, exactly what a second rebuilder would publish.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from factory.attest import dsse, rebuild
from factory.attest.fetch import attached
from factory.attest.keys import KeyType, load_public, write_keypair
from factory.attest.kinds import ANN_KIND
from factory.attest.provenance import PAYLOAD_TYPE
from factory.attest.push import attach
from factory.attest.signer import make_signer
from factory.attest.store import local_referrers, read_local_artifact
from factory.image import oci
from factory.rootfs.packages import packages_from_tar
from factory.source import proxyctl
from tests.build_fixtures import ROOT, TEST_SNAPSHOT, BuildRun
from tests.registry_fixtures import Registry, registry, skopeo_raw

pytestmark = [pytest.mark.root, pytest.mark.network, pytest.mark.slow]
__all__ = ["registry"]


def cli(*argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "factory.cli", *argv],
        capture_output=True, text=True, cwd=ROOT, check=check,
    )  # fmt: skip


def kinds(layout: Path) -> dict[str, bytes]:
    out = {}
    for d in local_referrers(layout):
        art = read_local_artifact(layout, d)
        out[d.annotations[ANN_KIND]] = art.payload
    return out


def test_build_keeps_sboms_and_provenance_beside_the_image(bookworm_build: BuildRun) -> None:
    layout = bookworm_build.output
    r = bookworm_build.result
    assert r["reproducible"] is True, r.get("differences")
    # both builds made the same SBOMs (compared like the image's digests)
    assert r["build_a"]["attestations"] == r["build_b"]["attestations"]
    assert set(r["build_a"]["attestations"]["linux/amd64"]) == {"sbom_spdx", "sbom_cyclonedx"}
    # the layout still lists one image, the one the double build made
    index = json.loads((layout / "index.json").read_bytes())
    assert [m["digest"] for m in index["manifests"]] == [r["index_digest"]]
    assert sorted(kinds(layout)) == ["provenance", "sbom-cyclonedx", "sbom-spdx"]


def test_sboms_validate_and_list_every_installed_package(
    bookworm_build: BuildRun, tmp_path: Path
) -> None:
    payloads = kinds(bookworm_build.output)
    spdx_path = tmp_path / "image.spdx.json"
    spdx_path.write_bytes(payloads["sbom-spdx"])
    doc = parse_file(str(spdx_path))
    assert validate_full_spdx_document(doc) == []
    cdx = payloads["sbom-cyclonedx"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx.decode()) is None

    # the image's own dpkg status, read from its layer, is what the SBOMs list
    layer = _layer_tar(bookworm_build.output, tmp_path)
    installed = packages_from_tar(layer)
    debs = [p for p in doc.packages if p.name != "debian:bookworm"]
    assert sorted((p.name, p.version, _arch(p)) for p in debs) == sorted(installed)
    comps = json.loads(cdx)["components"]
    assert len(comps) == len(installed) > 80
    assert all(c["hashes"][0]["alg"] == "SHA-256" for c in comps)  # every .deb's hash found
    assert all(c["purl"].startswith("pkg:deb/debian/") for c in comps)
    assert all("repository_url=" in c["purl"] and TEST_SNAPSHOT in c["purl"] for c in comps)
    with_license = [c for c in comps if c.get("licenses")]
    assert len(with_license) > len(comps) // 3  # DEP-5 files; the others say NOASSERTION
    assert doc.creation_info.created.strftime("%Y%m%dT%H%M%SZ") == TEST_SNAPSHOT


def test_sbom_hash_is_the_deb_apt_installed(
    bookworm_build: BuildRun, recorded_mirror: proxyctl.ProxyHandle
) -> None:
    """The SHA-256 in the SBOM is that of the .deb served under the pin (fetched again)."""
    comps = json.loads(kinds(bookworm_build.output)["sbom-cyclonedx"])["components"]
    comp = next(c for c in comps if c["name"] == "base-files")
    url = comp["externalReferences"][0]["url"]
    path = url.split("/archive/", 1)[1]
    with urllib.request.urlopen(f"{recorded_mirror.url.rstrip('/')}/archive/{path}") as resp:
        data = resp.read()
    assert hashlib.sha256(data).hexdigest() == comp["hashes"][0]["content"]


def test_provenance_names_both_builds(bookworm_build: BuildRun) -> None:
    st = json.loads(kinds(bookworm_build.output)["provenance"])
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    assert st["subject"][0]["digest"]["sha256"] == bookworm_build.result["index_digest"][7:]
    pred = st["predicate"]
    ext = pred["buildDefinition"]["externalParameters"]
    assert ext["snapshot"] == TEST_SNAPSHOT and ext["architectures"] == ["amd64"]
    deps = pred["buildDefinition"]["resolvedDependencies"]
    releases = [d for d in deps if d.get("uri", "").endswith("/InRelease")]
    assert releases and all(len(d["digest"]["sha256"]) == 64 for d in releases)
    assert {d.get("name") for d in deps} >= {"mmdebstrap", "reprobase", "compressor"}
    byproducts = {b["name"]: b["annotations"] for b in pred["runDetails"]["byproducts"]}
    assert sorted(byproducts) == ["build-A", "build-B"]
    assert byproducts["build-B"]["environment"]["clock_offset_days"] != "0"
    assert byproducts["build-A"]["digests"] == byproducts["build-B"]["digests"]


def test_sbom_command_prints_the_attached_bytes(bookworm_build: BuildRun) -> None:
    payloads = kinds(bookworm_build.output)
    for fmt, kind in (("spdx", "sbom-spdx"), ("cyclonedx", "sbom-cyclonedx")):
        proc = cli("sbom", str(bookworm_build.output), "--format", fmt)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.encode() == payloads[kind] + b"\n"


@pytest.fixture(scope="module")
def pushed(bookworm_build: BuildRun, registry: Registry) -> str:
    ref = registry.ref("attest/debian", "bookworm")
    proc = cli("publish", str(bookworm_build.output), ref, "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout.splitlines()[-1])["attestations"]) == 3
    return ref


def test_referrers_in_the_registry_leave_the_index_digest(
    bookworm_build: BuildRun, pushed: str
) -> None:
    digest = bookworm_build.result["index_digest"]
    raw = skopeo_raw(pushed)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest  # the tag is the image
    found = attached(pushed)
    assert found.subject.digest == digest
    assert sorted(a.descriptor.annotations[ANN_KIND] for a in found.artifacts) == [
        "provenance", "sbom-cyclonedx", "sbom-spdx",
    ]  # fmt: skip
    proc = cli("sbom", pushed, "--format", "cyclonedx")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.encode() == kinds(bookworm_build.output)["sbom-cyclonedx"] + b"\n"


def _verify(ref: str, trust: Path, n: int) -> tuple[int, dict[str, Any], str]:
    proc = cli("verify", ref, "--trust", str(trust), "--require", str(n), "--json")
    lines = proc.stdout.strip().splitlines()
    return proc.returncode, json.loads(lines[-1]) if lines else {}, proc.stdout + proc.stderr


def test_quorum_of_rebuilders(
    bookworm_build: BuildRun,
    pushed: str,
    recorded_mirror: proxyctl.ProxyHandle,
    tmp_path: Path,
) -> None:
    keys, trust = tmp_path / "keys", tmp_path / "trust"
    keys.mkdir()
    trust.mkdir()
    for name, kind in (
        ("alice", KeyType.ED25519),
        ("bob", KeyType.ECDSA_P256),
        ("carol", KeyType.ED25519),
        ("mallory", KeyType.ED25519),
    ):
        _key, pub = write_keypair(kind.generate(), keys / name)
        if name != "mallory":
            pub.rename(trust / pub.name)
    digest = bookworm_build.result["index_digest"]

    # alice: a real rebuild from the registry reference alone, signed and attached
    proc = cli("reproduce", pushed, "--proxy", recorded_mirror.url, "--upstream", "record",
               "--attest", "--key", str(keys / "alice.key"), "--push", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["reproduced"] is True and out["attestation"]["outcome"] == "identical"
    assert "PRIVATE" not in proc.stdout + proc.stderr

    rc, doc, text = _verify(pushed, trust, 1)
    assert rc == 0 and doc["identical"] == ["alice"], text
    rc, doc, text = _verify(pushed, trust, 2)  # 1 of 3: fails and names who is missing
    assert rc == 1 and doc["missing"] == ["bob", "carol"], text
    assert "missing: bob, carol" in text

    # alice's statement, as a second rebuilder would sign it: bob through the hook
    alice_env = _rebuild_envelopes(pushed)[0]
    claim_payload = alice_env.payload
    # ECDSA P-256 through openssl: `dgst -sha256 -sign` prints the DER signature
    bob = make_signer(trust / "bob.pub", f"openssl dgst -sha256 -sign {keys}/bob.key {{in}}")
    _attach(pushed, digest, dsse.sign(PAYLOAD_TYPE, claim_payload, bob.keyid, bob.sign))
    rc, doc, text = _verify(pushed, trust, 2)
    assert rc == 0 and doc["identical"] == ["alice", "bob"] and doc["missing"] == ["carol"]

    # forgeries: an untrusted key, a statement about another digest, an altered payload
    mallory = make_signer(keys / "mallory.key")
    _attach(pushed, digest, dsse.sign(PAYLOAD_TYPE, claim_payload, mallory.keyid, mallory.sign))
    carol = make_signer(keys / "carol.key")
    other = claim_payload.replace(digest[7:].encode(), b"0" * 64)
    _attach(pushed, digest, dsse.sign(PAYLOAD_TYPE, other, carol.keyid, carol.sign))
    good = dsse.sign(PAYLOAD_TYPE, claim_payload, carol.keyid, carol.sign)
    altered = claim_payload.replace(b'"identical"', b'"identical" ')
    _attach(pushed, digest, dsse.Envelope(PAYLOAD_TYPE, altered, good.signatures))
    rc, doc, text = _verify(pushed, trust, 3)
    assert rc == 1 and doc["identical"] == ["alice", "bob"] and doc["missing"] == ["carol"]
    reasons = "\n".join(doc["refused"])
    assert reasons.count("signed by no trusted key") == 1, reasons
    assert reasons.count("attests another image") == 1, reasons
    assert reasons.count("bad signature") == 1, reasons

    # securesystemslib agrees about alice's envelope, and the index digest never moved
    alice = load_public(trust / "alice.pub")
    alice_key = SSlibKey.from_crypto(alice.public, keyid=alice.keyid, scheme="ed25519")
    theirs = SslibEnvelope.from_dict(alice_env.to_json())
    assert list(theirs.verify([alice_key], 1)) == [alice.keyid]
    st = json.loads(theirs.payload)
    assert st["predicateType"] == rebuild.PREDICATE_TYPE
    assert st["subject"][0]["digest"] == {"sha256": digest[7:]}
    assert "sha256:" + hashlib.sha256(skopeo_raw(pushed)).hexdigest() == digest


def _rebuild_envelopes(ref: str) -> list[dsse.Envelope]:
    found = attached(ref)
    return [
        dsse.parse(a.payload)
        for a in found.artifacts
        if a.descriptor.annotations.get(ANN_KIND) == "rebuild"
    ]


def _attach(ref: str, digest: str, env: dsse.Envelope) -> None:
    subject = attached(ref).subject
    assert subject.digest == digest
    attach(ref, subject, dsse.MEDIA_TYPE, env.render(), dsse.MEDIA_TYPE, {ANN_KIND: "rebuild"})


def _layer_tar(layout: Path, tmp: Path) -> Path:
    top = oci.read_index(layout)["manifests"][0]
    index = oci.read_json_blob(layout, top["digest"])
    manifest = oci.read_json_blob(layout, index["manifests"][0]["digest"])
    blob = oci.blob_path(layout, manifest["layers"][0]["digest"])
    out = tmp / "layer.tar"
    with out.open("wb") as f:
        subprocess.run(["gzip", "-dc", str(blob)], stdout=f, check=True)
    return out


def _arch(p: Any) -> str:
    purl = next(r.locator for r in p.external_references if r.reference_type == "purl")
    return str(purl.split("arch=")[1].split("&")[0])


def test_build_key_signs_the_provenance(bookworm_build: BuildRun, tmp_path: Path) -> None:
    """What `build --key` does after the double build, on a copy of the layout."""
    from factory.commands.rebuildattest import sign_provenance

    layout = tmp_path / "layout"
    shutil.copytree(bookworm_build.output, layout, copy_function=os.link)
    key, pub = write_keypair(KeyType.ECDSA_P256.generate(), tmp_path / "builder")
    index_before = (layout / "index.json").read_bytes()
    digest = sign_provenance(layout, make_signer(key))
    assert digest is not None and (layout / "index.json").read_bytes() == index_before
    desc = next(d for d in local_referrers(layout) if d.digest == digest)
    env = SslibEnvelope.from_dict(json.loads(read_local_artifact(layout, desc).payload))
    builder = load_public(pub)
    sslib_key = SSlibKey.from_crypto(
        builder.public, keyid=builder.keyid, scheme="ecdsa-sha2-nistp256"
    )
    assert list(env.verify([sslib_key], 1)) == [builder.keyid]
    assert env.payload == kinds(bookworm_build.output)["provenance"]
    assert (bookworm_build.output / "referrers.json").read_bytes() != (
        layout / "referrers.json"
    ).read_bytes()  # the original layout is untouched
