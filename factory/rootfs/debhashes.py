"""What the SBOM needs from a root filesystem before normalisation empties apt's lists.

Runs as an mmdebstrap customize hook, after the recipe's own commands and before
factory.rootfs.normalize: `python -m factory.rootfs.debhashes ROOT OUT`. It only reads
the chroot and writes OUT outside it, so the image's bytes are untouched.

The SHA-256 of each installed .deb comes from apt's Packages lists in the chroot: apt
checked those lists against the signed InRelease (debian-archive-keyring) and refused
any .deb whose SHA-256 differed from them, so the list's value is the hash of the file
dpkg installed. The .debs themselves are gone by now (mmdebstrap removes them), and the
lists are emptied by the normalisation (they are named after the build-time mirror URL).
The InRelease files are hashed too: they are the snapshot's signed roots (provenance).
Output is canonical JSON with sorted keys: the same chroot gives the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import lzma
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factory.common.canonical import canonical_json

LISTS = "var/lib/apt/lists"
# apt keeps lists uncompressed unless told otherwise (Acquire::GzipIndexes and the like)
OPENERS: dict[str, Callable[[Path], bytes]] = {
    "": Path.read_bytes,
    ".gz": lambda p: gzip.decompress(p.read_bytes()),
    ".xz": lambda p: lzma.decompress(p.read_bytes()),
}
STATUS = "var/lib/dpkg/status"
DOC = "usr/share/doc"


def _fields(para: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in para.splitlines():
        if line[:1].isspace() or ":" not in line:
            continue
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def installed_keys(status_text: str) -> set[tuple[str, str, str]]:
    keys = set()
    for para in status_text.split("\n\n"):
        f = _fields(para)
        if f.get("Status", "").endswith(" installed") and "Package" in f:
            keys.add((f["Package"], f.get("Version", ""), f.get("Architecture", "")))
    return keys


def deb_hashes(
    packages: bytes, wanted: set[tuple[str, str, str]], archive: str = "debian"
) -> dict[str, dict[str, Any]]:
    """Pure: `name version arch` -> {archive, sha256, size, filename}, wanted packages only.

    Bytes, not text: a list has ~60 000 paragraphs and an image ~100 packages, so only the
    paragraphs of wanted names are decoded (decoding all of bookworm's 50 MB doubled the
    hook's time)."""
    names = {k[0].encode() for k in wanted}
    out: dict[str, dict[str, Any]] = {}
    for para in packages.split(b"\n\n"):
        first, _, _ = para.lstrip(b"\n").partition(b"\n")
        if first[len(b"Package: ") :] not in names or not first.startswith(b"Package: "):
            continue
        f = _fields(para.decode("utf-8", "replace"))
        key = (f.get("Package", ""), f.get("Version", ""), f.get("Architecture", ""))
        if key in wanted and "SHA256" in f:
            out[" ".join(key)] = {
                "archive": archive,
                "sha256": f["SHA256"],
                "size": int(f.get("Size", "0") or 0),
                "filename": f.get("Filename", ""),
            }
    return out


def archive_of(list_name: str) -> tuple[str, str]:
    """(archive, rest after dists/) of a list file named after its URL. Only these are kept:
    the URL's host is the build-time mirror or proxy, which must not be recorded."""
    prefix, _, rest = list_name.partition("_dists_")
    return ("debian-security" if "_debian-security" in prefix else "debian"), rest


def release_entry(list_name: str, data: bytes) -> dict[str, str]:
    archive, rest = archive_of(list_name)
    return {
        "archive": archive,
        "path": "dists/" + rest.replace("_", "/"),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def license_lines(text: str) -> str:
    """What a copyright file says in machine-readable form: its `Format:` line (DEP-5) and
    its `License:` lines. The full texts would be megabytes, and the SBOM needs no more."""
    lines = text.lstrip().splitlines()
    keep = [ln for ln in lines[:1] if ln.lower().startswith("format:")]
    keep += [ln for ln in lines if ln.lower().startswith("license:")]
    return "\n".join(keep) + "\n" if keep else ""


def copyrights(root: Path) -> dict[str, str]:
    """usr/share/doc/NAME/copyright (reduced to license_lines), and NAME -> target for
    symlinked doc dirs (stored as "->TARGET"); sorted by name."""
    out: dict[str, str] = {}
    doc = root / DOC
    if not doc.is_dir():
        return out
    for d in sorted(doc.iterdir()):
        if d.is_symlink():
            out[d.name] = "->" + Path(d.readlink()).name
            continue
        c = d / "copyright"
        if c.is_file() and not c.is_symlink():
            out[d.name] = license_lines(c.read_text("utf-8", "replace"))
    return out


def collect(root: Path) -> dict[str, Any]:
    status = (root / STATUS).read_text("utf-8", "replace") if (root / STATUS).is_file() else ""
    wanted = installed_keys(status)
    debs: dict[str, dict[str, Any]] = {}
    releases = []
    lists = root / LISTS
    for f in sorted(lists.iterdir()) if lists.is_dir() else []:
        base, _, ext = f.name.partition("_Packages")
        if base != f.name and ext in OPENERS:
            debs.update(deb_hashes(OPENERS[ext](f), wanted, archive_of(f.name)[0]))
        elif f.name.endswith("_InRelease"):
            releases.append(release_entry(f.name, f.read_bytes()))
    releases.sort(key=lambda r: (r["archive"], r["path"]))
    return {"debs": debs, "releases": releases, "status": status, "copyright": copyrights(root)}


def load_facts(path: Path) -> dict[str, Any]:
    """The hook's output; no facts when the hook did not run (the SBOM then lists no
    packages, visibly, rather than failing the build)."""
    try:
        loaded = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m factory.rootfs.debhashes")
    ap.add_argument("root", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    args.out.write_bytes(canonical_json(collect(args.root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
