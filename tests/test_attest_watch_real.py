"""The watch list for real: an image someone else published to a registry is rebuilt from
its own labels (one real rebuild of the session's bookworm build), attested and attached
there, what it carries recorded, and the report shows its record; a watched reference
that does not exist is an error row and stops nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.attest.fetch import attached
from factory.attest.keys import KeyType, load_public, load_trust_dir, write_keypair
from factory.attest.quorum import decide
from factory.attest.seen import envelopes
from factory.cli import main
from factory.common.progress import Progress
from factory.nightly.watch import WatchNight, attest_watched, watch_all
from factory.report import render
from factory.report.history import History
from factory.source import proxyctl
from factory.source.upstream import SourceChoice
from tests.build_fixtures import BuildRun
from tests.registry_fixtures import Registry, registry

pytestmark = [pytest.mark.root, pytest.mark.network, pytest.mark.slow]
__all__ = ["registry"]


def test_watched_image_rebuilt_attested_and_reported(
    bookworm_build: BuildRun,
    registry: Registry,
    recorded_mirror: proxyctl.ProxyHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    theirs = registry.ref("elsewhere/debian", "bookworm")  # "built by another user"
    assert main(["publish", str(bookworm_build.output), theirs]) == 0
    missing = registry.ref("elsewhere/debian", "nonexistent")
    trust = tmp_path / "trust"
    trust.mkdir()
    key, pub = write_keypair(KeyType.ED25519.generate(), tmp_path / "nightly")
    pub.rename(trust / pub.name)
    own = load_public(key, name="nightly")
    with History(tmp_path / "h.sqlite") as h:
        w = WatchNight(
            h, "run1", SourceChoice(proxy=recorded_mirror.url, upstream="record"), Progress(),
            lambda: "2026-12-02T04:00:00Z", tmp_path / "kept", attest_watched(key, None), (own,),
        )  # fmt: skip
        rows = watch_all(w, [missing, theirs])
        seen = sorted((a.kind, a.signer, a.outcome, a.checked) for a in h.attestations())
        doc = json.loads(render(h)["results.json"])
    capsys.readouterr()
    digest = bookworm_build.result["index_digest"]
    assert [(r.image, r.verdict) for r in rows] == [(missing, "error"), (theirs, "reproducible")]
    assert rows[1].index_digest == rows[1].digest_b == digest
    assert "attested (identical) as sha256:" in rows[1].message

    # the attestation is in the watched image's registry: `verify` counts it
    found = attached(theirs)
    decision = decide(digest, load_trust_dir(trust), envelopes(found.artifacts), 1)
    assert decision.passed and decision.identical == ["nightly"], decision.summary()
    assert seen == [
        ("provenance", None, None, False),
        ("rebuild", "nightly", "identical", True),
        ("sbom-cyclonedx", None, None, False),
        ("sbom-spdx", None, None, False),
    ]
    (watched,) = [v for v in doc["watched"] if v["reference"] == theirs]
    assert watched["reproducible_since"]["run_id"] == "run1"
    assert [r["signer"] for r in watched["rebuilders"]] == ["nightly"]
    (failed,) = [v for v in doc["watched"] if v["reference"] == missing]
    assert failed["last_failure"]["verdict"] == "error"
