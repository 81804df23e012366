"""The watch list: images built elsewhere, rebuilt each night from their own labels,
attested, kept in the history; one failing never stops the others (factory.nightly.watch).

The rebuild itself is factory.pipeline.reproduce's (tested for real elsewhere); here it
is replaced by its results, so that every outcome is exercised in milliseconds against
real layouts, real keys and the real history file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.attest import dsse
from factory.attest.fetch import attached
from factory.attest.keys import KeyType, load_public, write_keypair
from factory.common.arch import Architecture
from factory.common.errors import UserError
from factory.common.progress import Progress
from factory.image.selfdesc import RebuildSpec
from factory.nightly.config import config_from_dict
from factory.nightly.watch import CULPRIT, WatchNight, attest_watched, culprit, watch_all
from factory.pipeline.reproduce import Reproduction
from factory.recipes.recipe import load_recipe
from factory.report.history import History
from factory.source.origin import Origin
from factory.source.snapshot import Timestamp
from factory.source.upstream import SourceChoice
from tests.registry_fixtures import make_layout

SHADOW_DIFF = {
    "differences": [
        {"subject": "/etc/motd", "field": "content", "kind": "changed"},
        {"subject": "/etc/shadow", "field": "content", "kind": "changed",
         "note": "last password change day differs (app 2026-12-01 vs 2026-12-02)"},
    ]
}  # fmt: skip


def spec(digest: str) -> RebuildSpec:
    return RebuildSpec(
        load_recipe("debian:bookworm"), Timestamp.parse("20261201T000000Z"),
        (Architecture.parse("amd64"), Architecture.parse("arm64")), Origin.SNAPSHOT, None, None,
        digest, {"reprobase": "0.1.0"},
    )  # fmt: skip


class FakeRebuilds:
    """reproduce() as the watched images would answer it."""

    def __init__(self, tmp: Path) -> None:
        self.same = f"oci:{tmp / 'same'}"
        self.drift = f"oci:{tmp / 'drift'}"
        self.moved = f"oci:{tmp / 'moved'}"
        self.digests = {
            ref: make_layout(Path(ref[4:]), platforms=("amd64",), layer_sizes=(50,), seed=i).digest
            for i, ref in enumerate((self.same, self.drift, self.moved))
        }
        self.calls: list[str] = []

    def __call__(self, ref: str, choice: SourceChoice, progress: Progress) -> Reproduction:
        self.calls.append(ref)
        if ref == "oci:/nonexistent/crashes":
            raise RuntimeError("labels from a newer reprobase")
        if ref == "oci:/nonexistent/gone":
            raise UserError("oci:/nonexistent/gone: no such OCI layout directory")
        if ref == self.moved:  # the tag moved on since: the attestation cannot be attached
            return Reproduction(ref, spec("sha256:" + "77" * 32), "sha256:" + "77" * 32)
        digest = self.digests[ref]
        if ref == self.drift:
            return Reproduction(ref, spec(digest), "sha256:" + "99" * 32, diff=SHADOW_DIFF)
        return Reproduction(ref, spec(digest), digest)


def test_culprit_is_the_first_explained_difference() -> None:
    assert culprit(SHADOW_DIFF) == (
        "/etc/shadow: last password change day differs (app 2026-12-01 vs 2026-12-02)"
    )
    assert culprit({"differences": [{"subject": "/x", "field": "mode", "kind": "changed"}]}) == (
        "/x: mode changed"
    )
    assert culprit(None) is None


def test_each_watched_image_alone(tmp_path: Path) -> None:
    key, _pub = write_keypair(KeyType.ED25519.generate(), tmp_path / "nightly")
    fake = FakeRebuilds(tmp_path)
    refs = ["oci:/nonexistent/crashes", fake.same, "oci:/nonexistent/gone", fake.drift, fake.moved]
    own = load_public(key, name="nightly (this nightly)")
    with History(tmp_path / "h.sqlite") as h:
        w = WatchNight(
            h, "run1", SourceChoice(), Progress(), lambda: "2026-12-02T04:00:00Z",
            tmp_path / "kept", attest_watched(key, None), (own,), fake,
        )  # fmt: skip
        rows = watch_all(w, refs)
        stored = h.records()
        seen = h.attestations()
    assert fake.calls == refs  # a crash and an error before them stopped nothing
    assert len(stored) == len(rows) == 1 + 2 + 1 + 2 + 2  # one row per architecture
    by = {(r.image, r.arch): r for r in rows}
    assert {r.kind for r in rows} == {"watch"}
    crash = by[("oci:/nonexistent/crashes", "all")]
    assert (
        crash.verdict == "error" and "RuntimeError: labels from a newer reprobase" in crash.message
    )
    assert by[("oci:/nonexistent/gone", "all")].message.endswith("no such OCI layout directory")

    same = by[(fake.same, "amd64")]
    assert same.verdict == "reproducible" and same.index_digest == fake.digests[fake.same]
    assert (
        same.snapshot == "20261201T000000Z" and by[(fake.same, "arm64")].verdict == "reproducible"
    )
    assert CULPRIT not in same.message and "attested (identical) as sha256:" in same.message

    drift = by[(fake.drift, "amd64")]
    assert drift.verdict == "differs" and drift.digest_b == "sha256:" + "99" * 32
    assert f"{CULPRIT}/etc/shadow: last password change day differs" in drift.message
    assert "attested (differs)" in drift.message

    # someone else's tag moved on: signed all the same, kept beside the history
    moved = by[(fake.moved, "amd64")]
    assert "not attached" in moved.message
    kept = list((tmp_path / "kept").glob("*.dsse.json"))
    assert len(kept) == 1 and str(kept[0]) in moved.message
    env = dsse.parse(kept[0].read_bytes())
    assert dsse.valid_keyids(env, {own.keyid: own.verify}) == {own.keyid}

    # attached to the watched image itself, and recorded as seen, checked, by our key
    got = attached(fake.same)
    assert [a.descriptor.annotations["org.reprobase.attestation"] for a in got.artifacts] == [
        "rebuild"
    ]
    assert [(s.image, s.kind, s.signer, s.outcome, s.checked) for s in seen] == [
        (fake.drift, "rebuild", "nightly (this nightly)", "differs", True),
        (fake.same, "rebuild", "nightly (this nightly)", "identical", True),
    ]
    assert json.loads(got.artifacts[0].payload)["payloadType"] == "application/vnd.in-toto+json"


def test_watch_config() -> None:
    base = {"images": ["debian:bookworm"]}
    cfg = config_from_dict({"nightly": {**base, "watch": ["reg.invalid/x/debian:bookworm"]}}, "n")
    assert cfg.watch == ("reg.invalid/x/debian:bookworm",)
    assert config_from_dict({"nightly": base}, "n").watch == ()
    for value, msg in [
        (["a.invalid/x:1", "a.invalid/x:1"], "field 'nightly.watch': lists 'a.invalid/x:1' twice"),
        (["reg.invalid/UPPER:tag"], "field 'nightly.watch': 'reg.invalid/UPPER:tag'"),
        ([""], "must be a list of non-empty strings"),
        ("reg.invalid/x", "field 'nightly.watch': must be a list"),
    ]:
        with pytest.raises(UserError, match=msg):
            config_from_dict({"nightly": {**base, "watch": value}}, "n")
