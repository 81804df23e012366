"""Default paths are decided in one place and every command agrees on them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cache_proxy.cli import config_from_args
from cache_proxy.paths import CACHE_ENV, BaseDirs, Scheme, proxy_cache_dir
from factory.cli import build_parser, main
from factory.commands.report import resolve_paths
from factory.common.paths import Paths
from factory.nightly.config import config_from_dict
from factory.source.upstream import default_cache_dir

XDG = ("XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", CACHE_ENV)


def test_root_follows_the_fhs() -> None:
    base = BaseDirs.for_user(euid=0, environ={"XDG_CACHE_HOME": "/ignored"})
    assert base == BaseDirs(
        Scheme.FHS,
        Path("/var/cache/reprobase"),
        Path("/var/lib/reprobase"),
        Path("/etc/reprobase"),
    )
    assert base.proxy_cache == Path("/var/cache/reprobase/proxy")
    assert Paths(base).nightly_configs == (Path("/etc/reprobase/nightly.toml"),)


def test_users_follow_xdg() -> None:
    home = Path("/home/u")
    plain = Paths.for_user(euid=1000, environ={}, home=home)
    assert plain.base.scheme is Scheme.XDG
    assert plain.proxy_cache == home / ".cache/reprobase/proxy"
    assert plain.history == home / ".local/share/reprobase/history.sqlite"
    assert plain.report == home / ".local/share/reprobase/report"
    assert plain.store == home / ".local/share/reprobase/store"
    assert plain.nightly_configs == (
        home / ".config/reprobase/nightly.toml",
        Path("/etc/reprobase/nightly.toml"),
    )
    env = {"XDG_CACHE_HOME": "/c", "XDG_DATA_HOME": "/d", "XDG_CONFIG_HOME": "relative/is/invalid"}
    moved = Paths.for_user(euid=1000, environ=env, home=home)
    assert (moved.proxy_cache, moved.history) == (
        Path("/c/reprobase/proxy"),
        Path("/d/reprobase/history.sqlite"),
    )
    assert moved.base.config == home / ".config/reprobase"


def test_the_proxy_cache_variable_moves_it_for_everyone() -> None:
    assert proxy_cache_dir({CACHE_ENV: "/srv/proxy"}) == Path("/srv/proxy")


def every_default() -> dict[str, Path]:
    """Each command's own default, asked the way the command asks it."""
    proxy_args = build_parser(only="proxy").parse_args(["proxy"])
    report_args = build_parser(only="report").parse_args(["report"])
    nightly = config_from_dict({"nightly": {"images": ["debian:bookworm"]}}, "test.toml")
    report = resolve_paths(report_args)
    return {
        "proxy": config_from_args(proxy_args).cache_dir,
        "build": default_cache_dir().absolute(),
        "nightly_cache": nightly.cache_dir,
        "nightly_history": nightly.history,
        "nightly_report": nightly.report,
        "report_history": report.history,
        "report_output": report.output,
    }


@pytest.mark.parametrize("euid", [0, 1000])
def test_commands_agree(
    euid: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in XDG:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    found = every_default()
    assert found["proxy"] == found["build"] == found["nightly_cache"]
    assert found["nightly_history"] == found["report_history"]
    assert found["nightly_report"] == found["report_output"]
    assert main(["paths", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    assert Path(doc["proxy_cache"]) == found["proxy"]
    assert Path(doc["history"]) == found["report_history"]
    assert Path(doc["report"]) == found["report_output"]
    under = Path("/var") if euid == 0 else tmp_path
    assert all(p.is_relative_to(under) for p in found.values()), found
    assert doc["scheme"] == ("fhs" if euid == 0 else "xdg")
    assert [d["origin"] for d in doc["recipes"]][-1] in ("package", "checkout")


def test_paths_text_names_every_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["paths"]) == 0
    out = capsys.readouterr().out
    for key in ("proxy_cache", "history", "report", "store", "nightly_config", "recipes"):
        assert key in out
