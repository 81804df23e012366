from pathlib import Path

from factory.rootfs.normalize import clamp_shadow, normalise

EPOCH = 1795910400  # day 20786


def test_shadow_last_change_clamped_to_epoch_day() -> None:
    text = "root:*:20790:0:99999:7:::\nsvc:!:20700:0:99999:7:::\nnobody:*::0:99999:7:::\n"
    assert clamp_shadow(text, EPOCH // 86400) == (
        "root:*:20786:0:99999:7:::\nsvc:!:20700:0:99999:7:::\nnobody:*::0:99999:7:::\n"
    )


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)


def test_normalise_removes_host_state_and_pins_sources(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tree(
        root,
        {
            "etc/hostname": "buildhost-42\n",
            "etc/resolv.conf": "nameserver 10.1.2.3\n",
            "etc/machine-id": "0123456789abcdef\n",
            "etc/apt/apt.conf.d/99mmdebstrap": 'Acquire::http::Proxy "http://127.0.0.1:3142/";\n',
            "etc/apt/apt.conf.d/01autoremove-kernels": "6.18.44-host\n",
            "etc/apt/apt.conf.d/70debconf": "keep me\n",
            "etc/apt/sources.list": "deb http://127.0.0.1:3142/debian bookworm main\n",
            "etc/shadow": "root:*:20799:0:99999:7:::\n",
            "etc/shadow-": "root:*:20799:0:99999:7:::\n",
            "var/log/dpkg.log": "2026-11-30 install\n",
            "var/log/apt/history.log": "Start-Date\n",
            "var/cache/ldconfig/aux-cache": "inodes\n",
            "var/lib/apt/lists/host_debian_dists_bookworm_InRelease": "x",
            "var/lib/apt/lists/partial/.keep": "x",
            "var/cache/apt/pkgcache.bin": "x",
            "var/cache/apt/archives/partial/x.deb": "x",
            "var/lib/dpkg/status-old": "x",
            "tmp/mmdebstrap.apt.conf.XYZ": 'Dir "/chroot";\n',
        },
    )
    normalise(root, EPOCH, "Types: deb\n")
    assert (root / "etc/hostname").read_text() == "localhost\n"
    assert (root / "etc/resolv.conf").read_text() == ""
    assert (root / "etc/machine-id").read_text() == ""
    assert (root / "etc/shadow").read_text() == "root:*:20786:0:99999:7:::\n"
    assert (root / "etc/apt/sources.list.d/debian.sources").read_text() == "Types: deb\n"
    assert (root / "etc/apt/apt.conf.d/70debconf").exists()
    for gone in (
        "etc/apt/apt.conf.d/99mmdebstrap",
        "etc/apt/apt.conf.d/01autoremove-kernels",
        "etc/apt/sources.list",
        "etc/shadow-",
        "var/log/dpkg.log",
        "var/log/apt/history.log",
        "var/cache/ldconfig/aux-cache",
        "var/cache/apt/pkgcache.bin",
        "var/lib/apt/lists/host_debian_dists_bookworm_InRelease",
        "var/cache/apt/archives/partial/x.deb",
        "var/lib/dpkg/status-old",
    ):
        assert not (root / gone).exists(), gone
    assert (root / "var/lib/apt/lists/partial").is_dir()
    # /tmp holds mmdebstrap's own apt.conf until its cleanup step: removing it there
    # makes mmdebstrap's cleanup run apt against the *host* (it wiped the host's lists once).
    assert (root / "tmp/mmdebstrap.apt.conf.XYZ").exists()


def test_build_only_dpkg_option_taken_out_recipe_options_kept() -> None:
    from factory.rootfs.normalize import strip_build_options

    slim = "path-exclude=/usr/share/man/*\npath-include=/usr/share/man/man1/x\n"
    assert strip_build_options(slim + "force-unsafe-io\n") == slim
    assert strip_build_options("force-unsafe-io\n") == ""


def test_dpkg_cfg_of_build_options_only_removed_dir_mtime_kept(tmp_path: Path) -> None:
    """Without the slim options the file was ours alone: it goes, and its directory keeps
    the mtime the package gave it (else the layer's directory entry would change)."""
    import os

    root = tmp_path / "root"
    sources = tmp_path / "src"
    sources.write_text("Types: deb\n")
    cfg = root / "etc/dpkg/dpkg.cfg.d/99mmdebstrap"
    _tree(root, {str(cfg.relative_to(root)): "force-unsafe-io\n"})
    os.utime(cfg.parent, (1_700_000_000, 1_700_000_000))
    normalise(root, EPOCH, sources.read_text())
    assert not cfg.exists()
    assert cfg.parent.stat().st_mtime == 1_700_000_000
    # with recipe options the file stays, minus ours, its mode kept
    _tree(root, {str(cfg.relative_to(root)): "path-exclude=/usr/share/doc/*\nforce-unsafe-io\n"})
    cfg.chmod(0o640)
    normalise(root, EPOCH, sources.read_text())
    assert cfg.read_text() == "path-exclude=/usr/share/doc/*\n"
    assert cfg.stat().st_mode & 0o7777 == 0o640


def test_mmdebstrap_build_only_options_come_last() -> None:
    """Appended after the recipe's, so that taking them out restores the recipe's bytes."""
    from factory.common.arch import Architecture
    from tests.test_rootfs_argv import _argv

    for image in ("debian:bookworm", "debian:bookworm-slim"):
        dpkgopts = [a for a in _argv(Architecture.AMD64, "A", image) if a.startswith("--dpkgopt=")]
        assert dpkgopts[-1] == "--dpkgopt=force-unsafe-io"
        assert dpkgopts.count("--dpkgopt=force-unsafe-io") == 1
    slim = [a for a in _argv(Architecture.AMD64, "A", "debian:bookworm-slim") if "path-" in a]
    assert slim, "the slim recipe's own options are there too"
