"""Read the archive's own lists of hashes: Release (and InRelease) and Packages/Sources.

Each parser returns ``{path relative to the archive root: (size, sha256)}``, the
facts against which downloads are verified (Debian wiki "DebianRepository/Format":
Release lists dists files with SHA256; Packages lists pool files with Filename,
Size, SHA256; Sources lists Directory + Checksums-Sha256). Parsing uses
debian-inspector and runs off the event loop.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path
from typing import Final

from debian_inspector import debcon

Entries = dict[str, tuple[int, str]]

_DECOMPRESS: Final = {
    "": lambda b: b,
    ".xz": lzma.decompress,
    ".lzma": lzma.decompress,
    ".gz": gzip.decompress,
    ".bz2": bz2.decompress,
}


def release_text(raw: bytes) -> str:
    """The Release paragraph, InRelease's clear-signed wrapper removed (RFC 4880 §7)."""
    text = raw.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "-----BEGIN PGP SIGNED MESSAGE-----":
        return text
    try:
        start = lines.index("", 1) + 1  # armor headers ("Hash: ...") end at a blank line
        end = lines.index("-----BEGIN PGP SIGNATURE-----", start)
    except ValueError:
        return text
    # RFC 4880 §7.1: dash-escaped lines start with "- ".
    body = [ln[2:] if ln.startswith("- ") else ln for ln in lines[start:end]]
    return "\n".join(body) + "\n"


def parse_release(raw: bytes, suite: str) -> Entries:
    """SHA256 section of a Release/InRelease, paths made relative to the archive root."""
    para = debcon.get_paragraph_data(release_text(raw))
    out: Entries = {}
    for line in str(para.get("sha256", "")).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            out[f"dists/{suite}/{parts[2]}"] = (int(parts[1]), parts[0].lower())
    return out


def release_fields(raw: bytes) -> dict[str, str]:
    para = debcon.get_paragraph_data(release_text(raw))
    return {str(k): str(v) for k, v in para.items()}


def parse_packages(text: str) -> Entries:
    out: Entries = {}
    for para in debcon.get_paragraphs_data(text):
        name, size, sha = para.get("filename"), para.get("size"), para.get("sha256")
        if name and size and sha and str(size).isdigit():
            out[str(name)] = (int(size), str(sha).lower())
    return out


def parse_sources(text: str) -> Entries:
    out: Entries = {}
    for para in debcon.get_paragraphs_data(text):
        directory = para.get("directory")
        if not directory:
            continue
        for line in str(para.get("checksums-sha256", "")).splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit():
                out[f"{directory}/{parts[2]}"] = (int(parts[1]), parts[0].lower())
    return out


def parse_index_file(path: Path, kind: str, ext: str) -> Entries:
    """Decompress and parse a Packages or Sources blob (blocking: run in an executor)."""
    decompress = _DECOMPRESS.get(ext)
    if decompress is None:
        return {}
    text = decompress(path.read_bytes()).decode("utf-8", errors="replace")
    return parse_packages(text) if kind == "Packages" else parse_sources(text)
