"""Quorum-gated publication: a new image waits under its date tags; the moving tag moves
only when N trusted keys attest an identical rebuild (factory.nightly.quorumgate).

Against a local OCI store (the same referrers a registry would list), with real keys,
real DSSE envelopes and the real history file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.attest import dsse, provenance, rebuild
from factory.attest.keys import KeyType, write_keypair
from factory.attest.kinds import ANN_KEYID, ANN_KIND, KIND_REBUILD
from factory.attest.signer import make_signer
from factory.attest.store import add_local_referrer
from factory.common.arch import Architecture
from factory.common.errors import UserError
from factory.common.progress import Progress
from factory.image import oci
from factory.nightly import quorumgate
from factory.nightly.config import config_from_dict
from factory.nightly.run import Built, Night, conclude
from factory.nightly.trustconfig import QuorumSpec, parse_quorum
from factory.nightly.trustnight import after_builds
from factory.pipeline.build import ArchResult, BuildResult
from factory.pipeline.double import Verdict
from factory.publish import store
from factory.publish.targets import PublishTarget
from factory.recipes.recipe import Recipe, load_recipe
from factory.report import render
from factory.report.history import History, ResultRecord
from factory.report.trustlog import GateRecord
from factory.rootfs.buildenv import env_a
from factory.source.origin import Origin
from factory.source.snapshot import Timestamp
from factory.source.upstream import ResolvedSource
from tests.registry_fixtures import make_layout

PIN = Timestamp.parse("20261201T000000Z")
PIN2 = Timestamp.parse("20261202T000000Z")
NOW = "2026-12-02T03:00:00Z"


def keys(tmp: Path) -> tuple[Path, dict[str, Path]]:
    """alice, bob, carol: public keys in trust/, private ones beside it."""
    trust, priv = tmp / "trust", {}
    trust.mkdir()
    for name in ("alice", "bob", "carol"):
        key, _pub = write_keypair(KeyType.ED25519.generate(), trust / name)
        priv[name] = key.rename(tmp / key.name)
    return trust, priv


def attest(target: PublishTarget, recipe: Recipe, top: oci.Descriptor, key: Path,
           rebuilt: str | None = None) -> None:  # fmt: skip
    """What `reproduce --attest --push` leaves: a signed rebuild statement as a referrer."""
    claim = rebuild.RebuildClaim(
        recipe.ref, top.digest, rebuilt or top.digest, PIN.text, ("amd64",), "snapshot",
        (("reprobase", "0.1.0"),), (("machine", "x86_64"),), "2026-12-02T01:00:00Z",
    )  # fmt: skip
    s = make_signer(key)
    env = dsse.sign(provenance.PAYLOAD_TYPE, rebuild.render(claim), s.keyid, s.sign)
    ann = {ANN_KIND: KIND_REBUILD, ANN_KEYID: s.keyid}
    add_local_referrer(target.store_dir(recipe.name), top, dsse.MEDIA_TYPE, env.render(),
                       dsse.MEDIA_TYPE, ann)  # fmt: skip


def published(history: History, recipe: Recipe, pin: Timestamp, top: oci.Descriptor,
              written: list[str]) -> None:  # fmt: skip
    """The nightly row conclude() writes after publishing."""
    history.add(ResultRecord(
        run_id=f"{pin.text}-run", kind="nightly", image=recipe.ref, arch="amd64",
        snapshot=pin.text, verdict="reproducible", index_digest=top.digest,
        manifest_digest=None, digest_b=None, size=100, uncompressed_size=200,
        packages_digest="sha256:" + "11" * 32, packages=(("libc6", "2.36", "amd64"),),
        published=tuple(written), upstream_bytes=None, durations={},
        started=f"{pin.text[:8]}T01:00:00Z", finished=f"{pin.text[:8]}T01:10:00Z",
    ))  # fmt: skip


Setup = tuple[History, PublishTarget, Recipe, QuorumSpec, dict[str, Path]]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    trust, priv = keys(tmp_path)
    spec = parse_quorum("n.toml", {"trust": str(trust), "require": 2})
    return (History(tmp_path / "h.sqlite"), PublishTarget(f"oci:{tmp_path / 'store'}"),
            load_recipe("debian:bookworm"), spec, priv)  # fmt: skip


def candidate(tmp: Path, history: History, target: PublishTarget, recipe: Recipe,
              pin: Timestamp, seed: int) -> oci.Descriptor:  # fmt: skip
    layout = tmp / f"layout-{seed}"
    top = make_layout(layout, platforms=("amd64",), layer_sizes=(100,), seed=seed)
    written = quorumgate.publish_candidate(layout, recipe, pin, [target], None, lambda _m: None)
    published(history, recipe, pin, top, written)
    return top


def test_two_of_three_publishes_one_of_three_holds(tmp_path: Path, setup: Setup) -> None:
    history, target, recipe, spec, priv = setup
    top = candidate(tmp_path, history, target, recipe, PIN, seed=1)
    tags = store.tags(target.store_dir("debian"))
    assert tags == {"bookworm-20261201": top.digest, "bookworm-20261201T000000Z": top.digest}

    def gate() -> GateRecord | None:
        return quorumgate.gate_image(history, recipe, [target], spec, "r", NOW, lambda _m: None)

    none = gate()  # a brand-new digest: nobody has rebuilt it yet
    assert none is not None and not none.passed and none.promoted == ()
    assert none.missing == ("alice", "bob", "carol")

    attest(target, recipe, top, priv["alice"])
    attest(target, recipe, top, priv["carol"], rebuilt="sha256:" + "ee" * 32)  # disagrees
    one = gate()
    assert one is not None and not one.passed
    assert (one.identical, one.disagreeing, one.missing) == (("alice",), ("carol",), ("bob",))
    assert "missing: bob" in one.message and "'bookworm' held" in one.message
    assert "bookworm" not in store.tags(target.store_dir("debian"))

    attest(target, recipe, top, priv["bob"])
    two = gate()
    assert two is not None and two.passed and two.identical == ("alice", "bob")
    assert two.promoted == (target.describe("debian", "bookworm"),)
    assert store.tags(target.store_dir("debian"))["bookworm"] == top.digest
    assert gate() is None  # promoted: nothing waits any more
    got = history.gates(image="debian:bookworm")
    assert [g.passed for g in got] == [True, False, False]  # newest first, all kept
    assert got[1].missing == ("bob",)


def test_moving_tag_stays_on_the_promoted_image(tmp_path: Path, setup: Setup) -> None:
    history, target, recipe, spec, priv = setup
    old = candidate(tmp_path, history, target, recipe, PIN, seed=1)
    for name in ("alice", "bob"):
        attest(target, recipe, old, priv[name])
    assert quorumgate.gate_image(history, recipe, [target], spec, "r1", NOW, print)
    new = candidate(tmp_path, history, target, recipe, PIN2, seed=2)
    assert new.digest != old.digest
    attest(target, recipe, new, priv["alice"])  # only one so far
    held = quorumgate.gate_image(history, recipe, [target], spec, "r2", NOW, print)
    assert held is not None and not held.passed and held.index_digest == new.digest
    tags = store.tags(target.store_dir("debian"))
    assert tags["bookworm"] == old.digest and tags["bookworm-20261202"] == new.digest
    # a no-change night after the held candidate re-tags the candidate, not the moving tag's
    pin3 = Timestamp.parse("20261203T000000Z")
    digest, written = quorumgate.retag_unchanged(history, recipe, pin3, [target], print)
    assert digest == new.digest
    assert store.tags(target.store_dir("debian"))["bookworm-20261203"] == new.digest
    assert written[0].endswith(":bookworm-20261203")


def test_quorum_config(tmp_path: Path) -> None:
    trust, _ = keys(tmp_path)
    base = {"images": ["debian:bookworm"], "publish": [f"oci:{tmp_path}/s"]}
    cfg = config_from_dict({"nightly": {**base, "quorum": {"trust": str(trust), "require": 2}}},
                           "n.toml")  # fmt: skip
    assert cfg.quorum is not None and cfg.quorum.require == 2 and len(cfg.quorum.keys) == 3
    assert config_from_dict({"nightly": base}, "n.toml").quorum is None
    bad = [
        ({"trust": str(trust), "require": 4}, "field 'nightly.quorum.require': 4 but .* holds"),
        ({"trust": str(trust), "require": 0}, "nightly.quorum.require': must be at least 1"),
        ({"trust": str(tmp_path / "none"), "require": 1}, "nightly.quorum.trust': not a dir"),
        ({"trust": str(tmp_path), "require": 1}, "nightly.quorum.trust': no .pub files"),
        ({"trust": str(trust)}, "nightly.quorum.require': is required"),
        ({"trust": str(trust), "require": 1, "n": 2}, "nightly.quorum.n': unknown key"),
        ({"trust": str(trust), "require": "2"}, "nightly.quorum.require': must be a int"),
        ("x", "nightly.quorum': must be a dict"),
    ]
    for value, msg in bad:
        with pytest.raises(UserError, match=msg) as exc:
            config_from_dict({"nightly": {**base, "quorum": value}}, "n.toml")
        assert "\n" not in exc.value.render()
    with pytest.raises(UserError, match="quorum': gates publication"):
        quorum = {"trust": str(trust), "require": 1}
        config_from_dict({"nightly": {"images": ["debian:bookworm"], "quorum": quorum}}, "n.toml")


def _verdict(layout: Path, top: oci.Descriptor) -> Verdict:
    """What a double build that reproduced hands conclude() (A and B the same)."""
    index = oci.read_json_blob(layout, top.digest)
    manifest = oci.Descriptor.from_json(index["manifests"][0])
    arch = ArchResult(Architecture.parse("amd64"), manifest, "c", "l", "d", 100, 200,
                      packages=[("libc6", "2.36", "amd64")])  # fmt: skip
    result = BuildResult(layout, top, [arch], env_a(layout.parent / "env"))
    return Verdict(result, result)


def test_the_nightly_under_the_gate(tmp_path: Path) -> None:
    """conclude() publishes a candidate, the trust steps hold then promote it, a no-change
    night re-tags it, and the report says who attested what (no mmdebstrap involved)."""
    trust, priv = keys(tmp_path)
    target = f"oci:{tmp_path / 'store'}"
    cfg = config_from_dict({"nightly": {
        "images": ["debian:bookworm"], "publish": [target], "history": str(tmp_path / "h.sqlite"),
        "report": str(tmp_path / "report"), "quorum": {"trust": str(trust), "require": 2},
    }}, "n.toml")  # fmt: skip
    recipe, t = load_recipe("debian:bookworm"), PublishTarget(target)
    src = ResolvedSource(None, Origin.SNAPSHOT, None, None)  # type: ignore[arg-type]
    staging = tmp_path / "staging"
    top = make_layout(staging, platforms=("amd64",), layer_sizes=(100,), seed=3)
    sbom = {ANN_KIND: "sbom-spdx", "org.reprobase.platform": "linux/amd64"}
    add_local_referrer(staging, top, "application/spdx+json", b"{}", "application/spdx+json",
                       sbom)  # fmt: skip
    with History(cfg.history) as h:

        def night(pin: Timestamp) -> Night:
            return Night(cfg, pin, h, src, Progress(), tmp_path, f"{pin.text}-x")

        n1 = night(PIN)
        conclude(n1, Built("debian:bookworm", recipe, _verdict(staging, top), staging,
                           tmp_path / "keep", NOW))  # fmt: skip
        day = f"{target}/debian:bookworm-20261201"
        assert n1.records[0].published == (day, f"{day}T000000Z")
        assert after_builds(n1, cfg.images) == []
        assert "bookworm" not in store.tags(t.store_dir("debian"))
        (held,) = h.gates()
        assert held.missing == ("alice", "bob", "carol") and not held.passed

        for name in ("alice", "bob"):
            attest(t, recipe, top, priv[name])
        n2 = night(PIN2)
        again = tmp_path / "staging2"  # the same package set the next night: re-tagged
        make_layout(again, platforms=("amd64",), layer_sizes=(100,), seed=3)
        conclude(n2, Built("debian:bookworm", recipe, _verdict(again, top), again,
                           tmp_path / "keep", NOW))  # fmt: skip
        assert n2.records[0].verdict == "unchanged" and n2.records[0].index_digest == top.digest
        after_builds(n2, cfg.images)
        tags = store.tags(t.store_dir("debian"))
        assert tags["bookworm"] == tags["bookworm-20261202"] == top.digest
        assert h.gates()[0].passed and h.gates()[0].identical == ("alice", "bob")
        seen = {(a.kind, a.signer, a.checked) for a in h.attestations()}
        assert seen == {("sbom-spdx", None, False), ("rebuild", "alice", True),
                        ("rebuild", "bob", True)}  # fmt: skip
        doc = json.loads(render(h)["results.json"])
    trust_doc = doc["images"][0]["trust"]
    assert trust_doc["quorum"]["passed"] and trust_doc["quorum"]["missing"] == ["carol"]
    assert [r["signer"] for r in trust_doc["rebuilders"]] == ["alice", "bob"]
    assert [s["platform"] for s in trust_doc["sboms"]] == ["linux/amd64"]


def test_a_target_that_fails_promotion_is_tried_again(tmp_path: Path, setup: Setup) -> None:
    history, target, recipe, spec, priv = setup
    top = candidate(tmp_path, history, target, recipe, PIN, seed=1)
    for name in ("alice", "bob"):
        attest(target, recipe, top, priv[name])
    other = PublishTarget(f"oci:{tmp_path / 'other'}")  # the candidate never reached it

    def gate() -> GateRecord | None:
        return quorumgate.gate_image(history, recipe, [target, other], spec, "r", NOW, print)

    first = gate()
    assert first is not None and first.passed
    assert first.promoted == (target.describe("debian", "bookworm"),)
    assert f"not written to {other.describe('debian', 'bookworm')}" in first.message
    layout = tmp_path / "layout-1"
    quorumgate.publish_candidate(layout, recipe, PIN, [other], None, print)
    second = gate()  # the next night: only what is left
    assert second is not None and second.promoted == tuple(
        t.describe("debian", "bookworm") for t in (target, other)
    )
    assert store.tags(other.store_dir("debian"))["bookworm"] == top.digest
    assert gate() is None
