"""Nightly configuration, local OCI store publishing and tag moves, without builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.common.errors import UserError
from factory.image import oci
from factory.nightly.config import load_config
from factory.publish import store
from factory.recipes.recipe import load_recipe
from factory.source.snapshot import Timestamp

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["nightly.toml", "publish.toml"])
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(ROOT / "schedules" / name)
    assert set(cfg.images) == {
        "debian:bookworm",
        "debian:bookworm-slim",
        "debian:trixie",
        "debian:trixie-slim",
    }
    for image in cfg.images:
        load_recipe(image)
    assert cfg.publish


def test_publish_config_is_strict() -> None:
    assert load_config(ROOT / "schedules" / "publish.toml").upstream == "snapshot"


@pytest.mark.parametrize(("body", "needle"), [
    ("[nightly]\nimages = 3\n", "field 'nightly.images': must be a list"),
    ("[nightly]\nimages = ['debian:bookworm']\nupstream = 'ftp'\n", "field 'nightly.upstream'"),
    ("[nightly]\nimages = ['debian:bookworm']\nreverify = -1\n", "must be >= 0"),
    ("[nightly]\nimages = ['debian:bookworm']\nrecipes = []\n", "field 'nightly.recipes': unknown"),
    ("[other]\n", "no [nightly] table"),
    ("[nightly]\nimages = ['x']\nproxy = 'http://127.0.0.1:3142/'\n", "say what it serves"),
])  # fmt: skip
def test_bad_config_names_file_and_field(tmp_path: Path, body: str, needle: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(body)
    with pytest.raises(UserError) as ei:
        load_config(f)
    assert str(f) in ei.value.message and needle in ei.value.message


def _layout(path: Path, payload: bytes) -> str:
    oci.init_layout(path)
    desc = oci.write_json_blob(path, {"schemaVersion": 2, "payload": payload.hex()}, oci.MT_INDEX)
    oci.write_index(
        path,
        [
            oci.Descriptor(
                desc.media_type, desc.digest, desc.size, annotations={oci.ANN_REF_NAME: "bookworm"}
            )
        ],
        {},
    )
    return desc.digest


def test_store_publish_and_retag(tmp_path: Path) -> None:
    d1 = _layout(tmp_path / "one", b"night one")
    d2 = _layout(tmp_path / "two", b"night two")
    s = tmp_path / "store" / "debian"
    store.publish(tmp_path / "one", s, ["bookworm", "bookworm-20261128"])
    assert store.tags(s) == {"bookworm": d1, "bookworm-20261128": d1}
    store.retag(s, "bookworm", ["bookworm-20261129"])
    assert store.tags(s)["bookworm-20261129"] == d1
    store.publish(tmp_path / "two", s, ["bookworm", "bookworm-20261130"])
    assert store.tags(s) == {
        "bookworm": d2,
        "bookworm-20261128": d1,
        "bookworm-20261129": d1,
        "bookworm-20261130": d2,
    }
    # the store is itself a valid layout, and every tagged blob is present
    index = json.loads((s / "index.json").read_text())
    assert [m["annotations"][oci.ANN_REF_NAME] for m in index["manifests"]] == sorted(store.tags(s))
    for digest in (d1, d2):
        oci.read_blob(s, digest)


def test_store_retag_of_unknown_tag_is_an_error(tmp_path: Path) -> None:
    _layout(tmp_path / "one", b"x")
    store.publish(tmp_path / "one", tmp_path / "s", ["bookworm"])
    with pytest.raises(UserError, match="no tag 'trixie'"):
        store.retag(tmp_path / "s", "trixie", ["trixie-20261129"])


def test_date_tags() -> None:
    from factory.publish.targets import all_tags

    assert all_tags(load_recipe("debian:bookworm-slim"), Timestamp.parse("20261129T000000Z")) == [
        "bookworm-slim",
        "bookworm-slim-20261129",
        "bookworm-slim-20261129T000000Z",
    ]
