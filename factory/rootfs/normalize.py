"""Normalise a freshly bootstrapped root filesystem (runs as an mmdebstrap customize hook).

Each rule names the nondeterminism or leak it removes. Run as
`python -m factory.rootfs.normalize ROOT --epoch N --sources-file FILE`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

# Files whose content is host- or time-specific and which no image needs.
REMOVE_FILES = (
    "var/log/dpkg.log",  # install timestamps
    "var/log/bootstrap.log",
    "var/log/alternatives.log",  # timestamps
    "var/log/apt/history.log",  # timestamps, command lines
    "var/log/apt/term.log",
    "var/log/apt/eipp.log.xz",  # solver dump with timestamps
    "var/cache/ldconfig/aux-cache",  # holds inode numbers and mtimes of libraries
    "etc/apt/apt.conf.d/99mmdebstrap",  # build-time apt options: the proxy address
    "etc/apt/apt.conf.d/01autoremove-kernels",  # the build host's running kernel version
    "etc/apt/sources.list",  # build-time mirror; replaced by the snapshot deb822 file
    "run/mount/utab",
    "var/lib/dpkg/available-old",
    "var/lib/dpkg/status-old",  # previous dpkg state: differs with install order timing
    "var/lib/dpkg/diversions-old",
    "var/lib/dpkg/statoverride-old",
    "var/cache/debconf/config.dat-old",
    "var/cache/debconf/templates.dat-old",
    "var/cache/debconf/passwords.dat-old",
    "etc/passwd-",  # shadow-utils backups: copies from an intermediate state
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "etc/subuid-",
    "etc/subgid-",
)
# Directories emptied (kept, so that tools relying on them still work).
EMPTY_DIRS = (
    "var/lib/apt/lists",  # index files named after the build-time mirror URL
    "var/cache/apt",  # pkgcache.bin/srcpkgcache.bin are mmap dumps; downloaded .debs
    "var/tmp",
    # Not /tmp: mmdebstrap keeps its own apt.conf (with Dir pointing at the chroot) there
    # until its cleanup step; deleting it makes that step's `apt-get update` run against
    # the build host's apt state and wipe the host's package lists. mmdebstrap empties
    # /tmp itself afterwards.
)


# dpkg options that only make the build faster, written by mmdebstrap into the chroot's
# dpkg configuration for the build (factory.rootfs.mmdebstrap) and taken out again here:
# force-unsafe-io skips dpkg's fsync of every unpacked file, which made two builds on one
# disk (A and B of the double build) wait on each other. A throwaway chroot needs no
# crash safety; an image must not keep the option (its users' dpkg would skip syncs).
DPKG_CFG = "etc/dpkg/dpkg.cfg.d/99mmdebstrap"
BUILD_ONLY_DPKG_OPTIONS = ("force-unsafe-io",)


def strip_build_options(text: str) -> str:
    """Pure: the dpkg configuration without the build-only options (the recipe's stay)."""
    return "".join(
        line for line in text.splitlines(keepends=True)
        if line.strip() not in BUILD_ONLY_DPKG_OPTIONS
    )  # fmt: skip


def _strip_dpkg_cfg(root: Path) -> None:
    cfg = root / DPKG_CFG
    if cfg.is_symlink() or not cfg.is_file():
        return
    kept = strip_build_options(cfg.read_text())
    if kept:
        st = cfg.stat()
        cfg.write_text(kept)
        os.chmod(cfg, st.st_mode & 0o7777)
    else:  # only build options: the file was ours alone, as if never written; the
        # directory keeps the mtime dpkg gave it (unlinking would make it "now")
        st = cfg.parent.stat()
        cfg.unlink()
        os.utime(cfg.parent, ns=(st.st_atime_ns, st.st_mtime_ns))


def _remove(root: Path, rels: Iterable[str]) -> None:
    for rel in rels:
        p = root / rel
        if p.is_symlink() or p.is_file():
            p.unlink()


def _empty(root: Path, rel: str) -> None:
    d = root / rel
    if not d.is_dir() or d.is_symlink():
        return
    for child in sorted(d.iterdir()):
        if child.is_dir() and not child.is_symlink():
            # apt needs its partial/ directories; their content goes.
            if child.name in ("partial", "archives", "auxfiles"):
                _empty(root, str(child.relative_to(root)))
                continue
            shutil.rmtree(child)
        else:
            if child.name == "lock":
                continue
            child.unlink()


def clamp_shadow(text: str, epoch_day: int) -> str:
    """/etc/shadow field 3 is 'days since epoch of the last password change':
    a user made on another day (or a build with a shifted clock) changes it."""
    out = []
    for line in text.splitlines(keepends=True):
        fields = line.rstrip("\n").split(":")
        if len(fields) >= 3 and fields[2].isdigit() and int(fields[2]) > epoch_day:
            fields[2] = str(epoch_day)
            line = ":".join(fields) + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out)


def _write(path: Path, content: str, mode: int = 0o644) -> None:
    if path.is_symlink():
        path.unlink()
    path.write_text(content)
    os.chmod(path, mode)


def normalise(root: Path, epoch: int, sources: str) -> None:
    _remove(root, REMOVE_FILES)
    _strip_dpkg_cfg(root)
    for rel in EMPTY_DIRS:
        _empty(root, rel)
    # The build host's name and DNS config are copied in by the bootstrap.
    _write(root / "etc/hostname", "localhost\n")
    _write(root / "etc/resolv.conf", "")
    # A machine-id must be unique per machine: empty means "generate at first boot".
    if (root / "etc/machine-id").exists():
        _write(root / "etc/machine-id", "", 0o444)
    if (root / "var/lib/dbus/machine-id").is_file():
        (root / "var/lib/dbus/machine-id").unlink()
    shadow_path = root / "etc/shadow"
    if shadow_path.is_file():
        st = shadow_path.stat()
        shadow_path.write_text(clamp_shadow(shadow_path.read_text(), epoch // 86400))
        os.chmod(shadow_path, st.st_mode & 0o7777)
    (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    _write(root / "etc/apt/sources.list.d/debian.sources", sources)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m factory.rootfs.normalize")
    ap.add_argument("root", type=Path)
    ap.add_argument("--epoch", type=int, required=True)
    ap.add_argument("--sources-file", type=Path, required=True)
    args = ap.parse_args(argv)
    normalise(args.root, args.epoch, args.sources_file.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
