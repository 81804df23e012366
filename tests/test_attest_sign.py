"""DSSE, keys, the signing hook, rebuild statements and the k-of-n decision, without builds.
securesystemslib checks our envelopes independently."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

from factory.attest import dsse, provenance, quorum, rebuild
from factory.attest.keys import KeyType, load_private, load_public, load_trust_dir, write_keypair
from factory.attest.signer import make_signer
from factory.attest.store import add_local_referrer, local_referrers, read_local_artifact
from factory.common.errors import UserError
from factory.image import oci
from tests.registry_fixtures import make_layout

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def claim(digest: str = DIGEST, rebuilt: str = DIGEST) -> rebuild.RebuildClaim:
    return rebuild.RebuildClaim(
        "debian:bookworm", digest, rebuilt, "20261201T000000Z", ("amd64",), "snapshot",
        (("reprobase", "0.1.0"),), (("machine", "x86_64"),), "2026-12-02T00:00:00Z",
    )  # fmt: skip


def keypair(tmp: Path, name: str, kind: KeyType = KeyType.ED25519) -> tuple[Path, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    return write_keypair(kind.generate(), tmp / name)


def envelope(key: Path, c: rebuild.RebuildClaim) -> dsse.Envelope:
    s = make_signer(key)
    return dsse.sign(provenance.PAYLOAD_TYPE, rebuild.render(c), s.keyid, s.sign)


def test_pae_known_answer() -> None:
    # DSSE protocol.md's example
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize("kind", list(KeyType))
def test_securesystemslib_verifies_our_envelopes(tmp_path: Path, kind: KeyType) -> None:
    key, pub = keypair(tmp_path, "k", kind)
    env = envelope(key, claim())
    trusted = load_public(pub)
    sslib_key = SSlibKey.from_crypto(trusted.public, keyid=trusted.keyid, scheme=kind.sslib_scheme)
    theirs = SslibEnvelope.from_dict(json.loads(env.render()))
    assert list(theirs.verify([sslib_key], 1)) == [trusted.keyid]
    statement = json.loads(theirs.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": "debian:bookworm", "digest": {"sha256": "ab" * 32}}]
    # altered payload: securesystemslib refuses it too
    tampered = json.loads(env.render())
    tampered["payload"] = dsse.Envelope(env.payload_type, env.payload.replace(b"identical",
                                        b"differs"), ()).to_json()["payload"]  # fmt: skip
    from securesystemslib.exceptions import VerificationError

    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(tampered).verify([sslib_key], 1)


def test_private_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    key, pub = keypair(tmp_path, "k")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes() and b"PRIVATE" not in pub.read_bytes()
    with pytest.raises(UserError, match="exists"):
        write_keypair(KeyType.ED25519.generate(), tmp_path / "k")
    assert load_public(key).keyid == load_public(pub).keyid  # a .key gives its public half
    assert load_private(key)[1] is KeyType.ED25519


def test_sign_command_hook(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    key, pub = keypair(tmp_path, "token")
    hook = make_signer(pub, f"openssl pkeyutl -sign -inkey {key} -rawin -in {{in}}")
    env = dsse.sign(provenance.PAYLOAD_TYPE, b"{}", hook.keyid, hook.sign)
    assert dsse.valid_keyids(env, {load_public(pub).keyid: load_public(pub).verify})
    other, _ = keypair(tmp_path, "other")
    wrong = make_signer(pub, f"openssl pkeyutl -sign -inkey {other} -rawin -in {{in}}")
    with pytest.raises(UserError, match="does not verify with token"):
        wrong.sign(b"x")
    failing = make_signer(pub, "false")
    with pytest.raises(UserError, match="--sign-command failed"):
        failing.sign(b"x")


def test_quorum(tmp_path: Path) -> None:
    keys = {n: keypair(tmp_path / "keys", n) for n in ("alice", "bob", "carol")}
    trust = tmp_path / "keys"
    for k, _ in keys.values():
        k.rename(tmp_path / k.name)  # the trust directory holds public keys only
    trusted = load_trust_dir(trust)
    priv = {n: tmp_path / f"{n}.key" for n in keys}
    a = quorum.Found("m1", envelope(priv["alice"], claim()))
    b = quorum.Found("m2", envelope(priv["bob"], claim()))

    two = quorum.decide(DIGEST, trusted, [a, b], 2)
    assert two.passed and two.identical == ["alice", "bob"] and two.missing == ["carol"]
    one = quorum.decide(DIGEST, trusted, [a], 2)
    assert not one.passed and one.missing == ["bob", "carol"]
    assert "missing: bob, carol" in one.summary()

    stranger, _ = keypair(tmp_path / "elsewhere", "mallory")
    forged_key = quorum.Found("f1", envelope(stranger, claim()))
    other_digest = quorum.Found("f2", envelope(priv["carol"], claim(OTHER, OTHER)))
    signed = envelope(priv["carol"], claim())
    altered = quorum.Found("f3", dsse.Envelope(signed.payload_type,
                           signed.payload.replace(b"ab", b"ab "), signed.signatures))  # fmt: skip
    garbage = quorum.Found("f4", None)
    differs = quorum.Found("m3", envelope(priv["carol"], claim(DIGEST, OTHER)))
    d = quorum.decide(DIGEST, trusted, [a, forged_key, other_digest, altered, garbage, differs], 2)
    assert not d.passed
    assert d.identical == ["alice"] and d.disagreeing == ["carol"] and d.missing == ["bob"]
    reasons = "\n".join(d.refused)
    assert "f1: signed by no trusted key" in reasons
    assert "f2: attests another image" in reasons
    assert "f3: bad signature" in reasons
    assert "f4: not a DSSE envelope" in reasons
    assert len(d.refused) == 4


def test_trust_dir_refuses_duplicates(tmp_path: Path) -> None:
    _, pub = keypair(tmp_path, "a")
    shutil.copy(pub, tmp_path / "b.pub")
    with pytest.raises(UserError, match="same key"):
        load_trust_dir(tmp_path)


def test_layout_referrers_leave_the_index_alone(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    top = make_layout(layout, platforms=("amd64",), layer_sizes=(100,))
    before = (layout / "index.json").read_bytes()
    ann = {"org.reprobase.attestation": "rebuild"}
    one = add_local_referrer(layout, top, dsse.MEDIA_TYPE, b"{}", dsse.MEDIA_TYPE, ann)
    again = add_local_referrer(layout, top, dsse.MEDIA_TYPE, b"{}", dsse.MEDIA_TYPE, ann)
    assert one == again and len(local_referrers(layout)) == 1  # listed once
    assert (layout / "index.json").read_bytes() == before
    art = read_local_artifact(layout, local_referrers(layout, top.digest)[0])
    manifest = oci.read_json_blob(layout, one.digest)
    assert manifest["subject"]["digest"] == top.digest and art.payload == b"{}"
    assert local_referrers(layout, OTHER) == []


def test_provenance_statement_is_deterministic() -> None:
    env = {"hostname": "h", "TZ": "UTC", "workdir": "/var/tmp/reprobase-123/a"}
    inp = provenance.ProvenanceInput(
        "debian:bookworm", DIGEST, (("linux/amd64", OTHER),), {"name": "debian"}, "sha256:r",
        "20261201T000000Z", 1796083200, ("amd64",), "snapshot", None,
        (("mmdebstrap", "1.3.5"), ("reprobase", "0.1.0")),
        (("http://snapshot.invalid/archive/debian/20261201T000000Z/dists/bookworm/InRelease",
          "ee" * 32),),
        (provenance.BuildRecord("B", env, {"index": DIGEST}),
         provenance.BuildRecord("A", env, {"index": DIGEST})),
    )  # fmt: skip
    data = provenance.render(inp)
    st = json.loads(data)
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    pred = st["predicate"]
    assert pred["buildDefinition"]["externalParameters"]["snapshot"] == "20261201T000000Z"
    deps = pred["buildDefinition"]["resolvedDependencies"]
    assert deps[0]["digest"] == {"sha256": "ee" * 32}
    assert [b["name"] for b in pred["runDetails"]["byproducts"]] == ["build-A", "build-B"]
    assert b"/var/tmp" not in data  # the build directory would make two builds differ
    assert provenance.render(inp) == data


def test_store_publication_carries_the_attestations(tmp_path: Path) -> None:
    from factory.attest.fetch import attached
    from factory.publish.targets import PublishTarget, publish
    from factory.recipes.recipe import load_recipe
    from factory.source.snapshot import Timestamp

    layout = tmp_path / "layout"
    top = make_layout(layout, platforms=("amd64",), layer_sizes=(100,))
    ann = {"org.reprobase.attestation": "sbom-spdx", "org.reprobase.platform": "linux/amd64"}
    add_local_referrer(
        layout, top, "application/spdx+json", b'{"a":1}', "application/spdx+json", ann
    )
    store = tmp_path / "store"
    recipe, pin = load_recipe("debian:bookworm"), Timestamp.parse("20261201T000000Z")
    publish(layout, recipe, pin, [PublishTarget(f"oci:{store}")], None, lambda _m: None)
    found = attached(f"oci:{store}/debian:bookworm")
    assert found.subject.digest == top.digest
    assert [a.payload for a in found.artifacts] == [b'{"a":1}']
    assert attached(f"oci:{store}/debian:bookworm-20261201").artifacts  # every tag
