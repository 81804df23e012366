"""The recipe search path: --recipes, REPROBASE_RECIPES, then the shipped recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.cli import main
from factory.common.shipped import images_dir
from factory.recipes.book import ENV, RecipeBook
from factory.recipes.recipe import load_recipe

SHIPPED = ["debian:bookworm", "debian:bookworm-slim", "debian:trixie", "debian:trixie-slim"]


def write_recipe(root: Path, name: str, tag: str, suite: str = "bookworm") -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{tag}.toml"
    path.write_text(f'name = "{name}"\ntag = "{tag}"\nsuite = "{suite}"\n', encoding="utf-8")
    return path


def images_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["images", "--json", *argv]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert isinstance(doc, dict)
    return doc


def test_images_lists_the_shipped_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    doc = images_json(capsys)
    recipes = doc["recipes"]
    assert isinstance(recipes, list)
    assert [r["ref"] for r in recipes] == SHIPPED
    for r in recipes:
        assert r["origin"] in ("package", "checkout")
        assert Path(r["path"]).parent.parent == images_dir()
        assert r["suite"] in ("bookworm", "trixie") and r["variant"] == "minbase"
        assert "amd64" in r["architectures"] and not r["shadowed"]


def test_flags_then_environment_then_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    flag, env = tmp_path / "flag", tmp_path / "env"
    write_recipe(flag, "acme", "base", suite="trixie")
    write_recipe(env, "acme", "base")  # shadowed by the flag's
    write_recipe(env, "debian", "bookworm", suite="trixie")  # shadows the shipped one
    monkeypatch.setenv(ENV, f"{env}::")
    doc = images_json(capsys, "--recipes", str(flag))
    search = doc["search_path"]
    assert isinstance(search, list)
    assert [d["origin"] for d in search][:2] == ["--recipes", ENV]
    rows = [(r["ref"], r["origin"], r["shadowed"]) for r in doc["recipes"]]  # type: ignore[attr-defined]
    assert rows[:3] == [
        ("acme:base", "--recipes", False),
        ("acme:base", ENV, True),
        ("debian:bookworm", ENV, False),
    ]
    assert ("debian:bookworm", rows[-1][1], True) in rows
    book = RecipeBook.resolve([flag])
    assert load_recipe("acme:base", book).suite == "trixie"
    assert load_recipe("debian:bookworm", book).suite == "trixie"
    assert load_recipe("debian:trixie", book).source.startswith(str(images_dir()))


def test_a_name_found_nowhere_is_one_line_that_lists_what_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_recipe(tmp_path, "acme", "base")
    assert main(["build", "acme:nope", "--once", "--recipes", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: no recipe for 'acme:nope' in ")
    assert str(tmp_path) in err[0] and "acme:base" in err[0] and "debian:trixie" in err[0]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_recipe_directory_that_is_not_one_is_refused(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"
    argv = ["images"]
    if how == "flag":
        argv += ["--recipes", str(missing)]
    else:
        monkeypatch.setenv(ENV, str(missing))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a directory" in err[0] and str(missing) in err[0]


def test_a_broken_user_recipe_is_listed_with_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "bad.toml").write_text("name = 1\n", encoding="utf-8")
    doc = images_json(capsys, "--recipes", str(tmp_path))
    first = doc["recipes"][0]  # type: ignore[index]
    assert first["ref"] == "acme:bad" and "must be a str" in first["error"]
    assert len(doc["recipes"]) == 1 + len(SHIPPED)  # type: ignore[arg-type]


@pytest.mark.parametrize("image", ["../x:y", "a:../b", "debian:", ":bookworm", "a/b:c"])
def test_names_cannot_leave_their_directory(image: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", image, "--once"]) == 2
    err = capsys.readouterr().err
    assert "bad image name" in err and "Traceback" not in err
