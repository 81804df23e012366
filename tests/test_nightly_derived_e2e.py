"""A nightly with one derived image, for real: night 1 double-builds debian:bookworm-slim,
publishes it to a registry and a local store, then rebuilds the derived image FROM that
very digest (pulled from the registry), double-built and published beside it with its
build context (too large to embed: a referrer in the registry, a blob in the store);
night 2 (`--only` the derived image) builds it again on the last published base (the
same digest comes out) and re-verifies night 1's image from the registry alone. History
and report show the base digest."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from factory.cli import main
from factory.publish import store
from factory.report.history import History
from factory.source import proxyctl
from tests.build_fixtures import TEST_SNAPSHOT, recorded_mirror  # noqa: F401
from tests.registry_fixtures import Registry, registry, skopeo_raw  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.network, pytest.mark.slow]
DAY = f"{TEST_SNAPSHOT[:4]}-{TEST_SNAPSHOT[4:6]}-{TEST_SNAPSHOT[6:8]}"
APP = """\
FROM placeholder.invalid/replaced-by-the-nightly:x
RUN useradd -m app
COPY hello.txt noise.bin /app/
USER app
"""


def _night(
    config: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any]]:
    rc = main(["nightly", "--config", str(config), "--date", DAY, "--jobs", "2", "--json", *extra])
    out = capsys.readouterr().out.strip().splitlines()
    return rc, json.loads(out[-1])


def test_a_derived_image_follows_its_base(
    recorded_mirror: proxyctl.ProxyHandle,  # noqa: F811
    registry: Registry,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "Containerfile").write_text(APP)
    (app / "hello.txt").write_text("hello\n")
    (app / "noise.bin").write_bytes(random.Random(17).randbytes(96 << 10))  # not embedded
    storedir = tmp_path / "store"
    config = tmp_path / "nightly.toml"
    config.write_text(
        "[nightly]\n"
        'images = ["debian:bookworm-slim"]\narchitectures = ["amd64"]\n'
        f'proxy = "{recorded_mirror.url}"\nupstream = "record"\n'
        f'publish = ["{registry.host}/nightly", "oci:{storedir}"]\nreverify = 1\n'
        f'history = "{tmp_path}/history.sqlite"\nreport = "{tmp_path}/report"\n'
        '[[nightly.derived]]\nname = "myapp:latest"\ncontainerfile = "app/Containerfile"\n'
        'base = "debian:bookworm-slim"\n'
    )

    rc, night1 = _night(config, capsys)
    assert rc == 0 and night1["ok"] is True, night1
    rows = {(r["kind"], r["image"]): r for r in night1["results"]}
    slim = rows[("nightly", "debian:bookworm-slim")]
    app1 = rows[("derived", "myapp:latest")]
    assert (slim["verdict"], app1["verdict"]) == ("reproducible", "reproducible")
    # FROM the digest the night verified and published, recorded as such
    assert app1["base_digest"] == slim["index_digest"]
    assert app1["digest_b"] == app1["manifest_digest"]  # builds A and B agreed
    assert "verified tonight" in app1["message"]
    tags = store.tags(storedir / "myapp")
    pin = f"latest-{TEST_SNAPSHOT}"
    assert {tags["latest"], tags[f"latest-{TEST_SNAPSHOT[:8]}"], tags[pin]} == {
        app1["index_digest"]
    }
    for tag in ("latest", pin):  # the registry has it too, byte for byte
        raw = skopeo_raw(registry.ref("nightly/myapp", tag))
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == app1["index_digest"]
    ann = json.loads(raw)["annotations"]
    assert "org.reprobase.derived.context" not in ann  # the context travels beside it
    assert (
        (storedir / "myapp" / "blobs" / "sha256")
        .joinpath(ann["org.reprobase.derived.context.digest"].removeprefix("sha256:"))
        .is_file()
    )
    assert ann["org.opencontainers.image.base.digest"] == slim["index_digest"]
    assert (
        f"FROM {registry.host}/nightly/debian:bookworm-slim-{TEST_SNAPSHOT}@"
        in ann["org.reprobase.derived.containerfile"]
    )  # the FROM it was built on, pinned, is what it records

    # night 2: the derived image alone, on the last published base; night 1's re-verified
    rc, night2 = _night(config, capsys, "--only", "myapp:latest")
    assert rc == 0, night2
    rows2 = {(r["kind"], r["image"]): r for r in night2["results"]}
    assert set(rows2) == {("derived", "myapp:latest"), ("derived-reverify", "myapp:latest")}
    again = rows2[("derived", "myapp:latest")]
    assert again["verdict"] == "unchanged" and again["index_digest"] == app1["index_digest"]
    assert "not built tonight" in again["message"]
    check = rows2[("derived-reverify", "myapp:latest")]
    assert check["verdict"] == "reproducible" and check["digest_b"] == app1["index_digest"]
    assert check["base_digest"] == slim["index_digest"]

    with History(tmp_path / "history.sqlite") as h:
        kinds = sorted((r.kind, r.image, r.verdict) for r in h.records())
    assert kinds == [
        ("derived", "myapp:latest", "reproducible"),
        ("derived", "myapp:latest", "unchanged"),
        ("derived-reverify", "myapp:latest", "reproducible"),
        ("nightly", "debian:bookworm-slim", "reproducible"),
    ]
    html = (tmp_path / "report" / "index.html").read_text()
    section = html[html.index('id="derived"') :]
    assert "myapp:latest" in section and f'title="{slim["index_digest"]}"' in section
