"""What mmdebstrap is asked to do (pure: no build)."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.common.arch import Architecture
from factory.recipes.recipe import load_recipe
from factory.rootfs.buildenv import env_a, env_b, faketime_lib
from factory.rootfs.mmdebstrap import RootfsJob, mmdebstrap_argv
from factory.source.buildsource import BuildSource
from factory.source.snapshot import Timestamp

TS = Timestamp.parse("20261129T000000Z")


def _argv(arch: Architecture, env_name: str, image: str = "debian:bookworm") -> list[str]:
    env = env_a(Path("/w")) if env_name == "A" else env_b(Path("/w"))
    job = RootfsJob(
        load_recipe(image),
        arch,
        TS,
        BuildSource.snapshot(TS, "http://127.0.0.1:9/"),
        env,
        Path("/w/job"),
    )
    return mmdebstrap_argv(job, root_mode=True)


def test_snapshot_sources_and_proxy_only_as_apt_option() -> None:
    argv = _argv(Architecture.AMD64, "A")
    assert argv[-3:] == [
        "deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/20261129T000000Z/ "
        "bookworm main",
        "deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/20261129T000000Z/ "
        "bookworm-updates main",
        "deb [check-valid-until=no] http://snapshot.debian.org/archive/debian-security/"
        "20261129T000000Z/ bookworm-security main",
    ]
    assert '--aptopt=Acquire::http::Proxy "http://127.0.0.1:9/"' in argv
    assert "--hook-dir=/usr/share/mmdebstrap/hooks/maybe-merged-usr" in argv
    assert "--variant=minbase" in argv and "--format=tar" in argv
    # the tar comes on stdout (into memory), not through a file on the scratch disk
    assert argv[argv.index("bookworm") + 1] == "-"


def test_slim_recipe_passes_dpkg_path_filters() -> None:
    argv = _argv(Architecture.AMD64, "A", "debian:trixie-slim")
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
    assert "--dpkgopt=path-include=/usr/share/doc/*/copyright" in argv


@pytest.mark.skipif(faketime_lib() is None, reason="libfaketime not installed")
def test_clock_shift_library_only_enters_native_chroots() -> None:
    native = _argv(Architecture.native(), "B")
    assert any(a.startswith("--setup-hook=mkdir") for a in native)
    assert any("rmdir" in a for a in native)
    foreign = (
        Architecture.ARM64 if Architecture.native() is Architecture.AMD64 else Architecture.AMD64
    )
    # an emulated process cannot load the host's library; copying it in only left an
    # empty /usr/lib/x86_64-linux-gnu in the arm64 image of build B (found by the double build)
    assert not any("faketime" in a for a in _argv(foreign, "B"))


def test_image_sources_name_where_the_packages_came_from() -> None:
    from factory.rootfs.mmdebstrap import image_sources

    def sources(source: BuildSource) -> str:
        job = RootfsJob(
            load_recipe("debian:bookworm"), Architecture.AMD64, TS, source, env_a(Path("/w")),
            Path("/w/job"),
        )  # fmt: skip
        return image_sources(job)

    snap = sources(BuildSource.snapshot(TS, "http://127.0.0.1:9/"))
    assert "URIs: http://snapshot.debian.org/archive/debian/20261129T000000Z" in snap
    mirror = sources(
        BuildSource.mirror("http://m.example/debian/", "http://m.example/debian-security/")
    )
    assert "snapshot.debian.org" not in mirror
    assert "URIs: http://m.example/debian\nSuites: bookworm bookworm-updates" in mirror
    assert "URIs: http://m.example/debian-security\nSuites: bookworm-security" in mirror
    assert "debian-security" not in sources(BuildSource.mirror("http://m.example/debian/"))
    # a loopback mirror (a proxy on the build host) never reaches the image
    assert "127.0.0.1" not in sources(BuildSource.mirror("http://127.0.0.1:3142/debian/"))
