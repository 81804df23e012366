"""reproduce of an image made by another reprobase version: said before rebuilding, and
--tool-version recorded rebuilds with that version, installed from the package index
(here a local directory of wheels, PIP_FIND_LINKS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factory import __version__
from factory.cli import main
from factory.common.errors import UserError
from factory.image.config import LABEL_PREFIX
from factory.pipeline.toolversion import TOOLS_ENV, notice, wanted, without_flag
from factory.recipes.recipe import load_recipe
from tests.diff_fixtures import Image, base_files, layer, make_tar, write_layout
from tests.test_package import checkout_copy, pip_wheel

OLD = "0.0.1+test14"  # a local version: it can only come from the wheel directory
DEAD_MIRROR = "http://127.0.0.1:9/debian"  # refused at once: the rebuild stops early


def old_image(layout: Path, version: str = OLD) -> Path:
    """A small layout that describes itself as built by reprobase VERSION."""
    ann = {
        LABEL_PREFIX + "recipe": json.dumps(load_recipe("debian:bookworm-slim").to_json()),
        LABEL_PREFIX + "snapshot": "20261201T000000Z",
        LABEL_PREFIX + "version": version,
        LABEL_PREFIX + "packages-from": "mirror",
        LABEL_PREFIX + "mirror": DEAD_MIRROR + "/",
    }
    return write_layout(
        layout, [Image((layer(make_tar(base_files())),))], nested=True, annotations=ann
    )


def test_which_version() -> None:
    assert wanted("current", OLD) is None
    assert wanted("recorded", OLD) == OLD
    assert wanted("recorded", __version__) is None  # this one: rebuild here
    assert wanted("0.0.9", OLD) == "0.0.9"
    with pytest.raises(UserError, match="does not record"):
        wanted("recorded", "")
    with pytest.raises(UserError, match="not a version"):
        wanted("../../x", OLD)
    assert notice("img", __version__) is None and notice("img", "") is None
    assert without_flag(["reproduce", "R", "--tool-version", "recorded", "--json"]) == [
        "reproduce", "R", "--json",
    ]  # fmt: skip
    assert without_flag(["reproduce", "--tool-version=recorded", "R"]) == ["reproduce", "R"]


def test_another_version_is_said_in_one_line_before_rebuilding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = old_image(tmp_path / "old")
    assert main(["reproduce", str(layout), "--mirror", DEAD_MIRROR]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    notes = [i for i, line in enumerate(err) if f"built by reprobase {OLD}" in line]
    assert len(notes) == 1, err
    assert f"this is {__version__}" in err[notes[0]] and "--tool-version recorded" in err[notes[0]]
    rebuilding = [i for i, line in enumerate(err) if "rebuilding from mirror" in line]
    assert rebuilding and notes[0] < rebuilding[0]  # before the rebuild starts
    assert err[-1].startswith("error: ")


@pytest.mark.slow
def test_recorded_version_is_installed_once_and_runs(tmp_path: Path) -> None:
    src = checkout_copy(tmp_path / "src")
    for name in ("pyproject.toml", "factory/__init__.py", "cache_proxy/__init__.py"):
        f = src / name
        text = f.read_text(encoding="utf-8")
        assert f'"{__version__}"' in text
        f.write_text(text.replace(f'"{__version__}"', f'"{OLD}"', 1), encoding="utf-8")
    wheels = tmp_path / "wheels"
    pip_wheel(src, wheels)
    layout = old_image(tmp_path / "old")
    tools = tmp_path / "tools"
    env = {**os.environ, "PIP_FIND_LINKS": str(wheels), TOOLS_ENV: str(tools)}
    argv = [sys.executable, "-m", "factory.cli", "reproduce", str(layout),
            "--tool-version", "recorded", "--mirror", DEAD_MIRROR]  # fmt: skip

    def reproduce() -> list[str]:
        proc = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=900, check=False)  # fmt: skip
        assert proc.returncode == 2, proc.stderr  # the rebuild's own error, from the old one
        return proc.stderr.strip().splitlines()

    first = reproduce()
    exe = tools / f"reprobase-{OLD}" / "bin" / "reprobase"
    assert any(line.startswith(f"installing reprobase {OLD} into ") for line in first), first
    handed = first.index(f"rebuilding with reprobase {OLD} ({exe})")
    # after the hand-over only the old version speaks: same version, so no note
    after = first[handed + 1 :]
    assert any("rebuilding from mirror" in line for line in after), first
    assert not any("built by reprobase" in line for line in first)
    assert after[-1].startswith("error: ")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"reprobase {OLD}"
    second = reproduce()  # the cached venv: nothing installed again
    assert not any(line.startswith("installing reprobase") for line in second), second
    assert f"rebuilding with reprobase {OLD} ({exe})" in second
