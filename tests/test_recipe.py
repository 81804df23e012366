from pathlib import Path

import pytest

from factory.cli import main
from factory.common.errors import UserError
from factory.common.shipped import images_dir
from factory.recipes.recipe import load_recipe

REQUIRED = ["debian:bookworm", "debian:bookworm-slim", "debian:trixie", "debian:trixie-slim"]


@pytest.mark.parametrize("name", REQUIRED)
def test_shipped_recipes_load(name: str) -> None:
    r = load_recipe(name)
    assert r.ref == name
    assert r.suite in name
    assert ("slim" in name) == (r.slim is not None)
    assert r.architectures == ("amd64", "arm64")
    assert r.digest().startswith("sha256:") and len(r.digest()) == 71


def test_slim_rules_keep_copyright_files() -> None:
    opts = load_recipe("debian:bookworm-slim").slim.dpkg_options()  # type: ignore[union-attr]
    assert "path-exclude=/usr/share/doc/*" in opts
    assert "path-include=/usr/share/doc/*/copyright" in opts
    # dpkg applies filters in order: includes must come after the excludes they refine
    assert opts.index("path-include=/usr/share/doc/*/copyright") > opts.index(
        "path-exclude=/usr/share/doc/*"
    )


def test_recipe_digest_ignores_key_order_and_comments(tmp_path: Path) -> None:
    d = tmp_path / "x"
    d.mkdir()
    (d / "a.toml").write_text('name="x"\ntag="a"\nsuite="bookworm"\npackages=["b","a"]\n')
    (d / "b.toml").write_text('# c\nsuite="bookworm"\npackages=["a","b"]\ntag="a"\nname="x"\n')
    ra, rb = load_recipe("x:a", tmp_path), load_recipe("x:b", tmp_path)
    assert ra.to_json() == rb.to_json()
    assert ra.digest() == rb.digest()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('name="x"\ntag="t"\nsuite="bookworm"\nflavour="y"\n', "field 'flavour': unknown key"),
        ('name="x"\ntag="t"\nsuite="buster2"\n', "field 'suite': unknown suite 'buster2'"),
        (
            'name="x"\ntag="t"\nsuite="bookworm"\npackages="curl"\n',
            "field 'packages': must be a list",
        ),
        (
            'name="x"\ntag="t"\nsuite="bookworm"\narchitectures=["amd64","m68k"]\n',
            "field 'architectures': unknown architecture 'm68k'",
        ),
        (
            'name="x"\ntag="t"\nsuite="bookworm"\n[slim]\npath_exclud=["/x"]\n',
            "field 'slim.path_exclud': unknown key",
        ),
        ('tag="t"\nsuite="bookworm"\n', "field 'name': is required"),
        (
            'name="x"\ntag="t"\nsuite="bookworm"\nvariant=3\n',
            "field 'variant': must be a str, not int",
        ),
    ],
)
def test_bad_recipe_names_file_and_field(tmp_path: Path, body: str, needle: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(UserError) as ei:
        load_recipe(str(f))
    assert str(f) in ei.value.message
    assert needle in ei.value.message


def test_bad_recipe_from_cli_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('name="x"\ntag="t"\nsuite="bookworm"\ncolour="red"\n')
    assert main(["build", str(f), "--once"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {f}: field 'colour': unknown key (known: architectures, components, "
        "compression, customize, description, name, packages, slim, suite, tag, variant)"
    ]


def test_unknown_image_lists_available(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "debian:potato", "--once"]) == 2
    err = capsys.readouterr().err
    assert "no recipe for 'debian:potato'" in err and "debian:bookworm-slim" in err
    assert "Traceback" not in err


def test_images_dir_layout() -> None:
    assert sorted(p.name for p in (images_dir() / "debian").glob("*.toml")) == [
        "bookworm-slim.toml",
        "bookworm.toml",
        "trixie-slim.toml",
        "trixie.toml",
    ]
