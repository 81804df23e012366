"""Known-answer self-test of the byte path, run before anything is built or reproduced.

As crypto libraries do at start, reprobase writes a small fixed layer with each
compressor and compares the digests with the answers shipped here. A machine whose
compressor, tar writer or JSON encoder gives other bytes would build images that
reproduce nowhere else, so it is refused before the first mmdebstrap run. It costs a
few milliseconds.

The inputs are generated from fixed seeds with SHA-256 (not `random`, whose
algorithms may change between Python versions), so every Python and every CPU sees
the same bytes. tests/hostprobe.py runs the same inputs under other CPU models, an
arm64 Python and trixie's Python.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from factory.common.canonical import canonical_json, sha256_digest
from factory.common.errors import UserError
from factory.image.compress import Compression
from factory.image.layer import write_layer_from

EPOCH = 1795910400  # 2026-11-29T00:00:00Z: any fixed instant would do

_WORDS = (
    b"Package: Version: Architecture: amd64 arm64 Depends: libc6 (>= 2.36) Description: "
    b"usr/share/doc/ /usr/lib/x86_64-linux-gnu/ .so.6 copyright changelog.Debian.gz "
    b"\x7fELF\x02\x01\x01 \x00\x00\x00\x00 GLIBC_2.34 __libc_start_main main .text .data"
).split(b" ")


def _stream(seed: bytes) -> Iterator[bytes]:
    """An endless stream of 32-byte blocks: SHA-256 in counter mode."""
    n = 0
    while True:
        yield hashlib.sha256(seed + n.to_bytes(8, "big")).digest()
        n += 1


def sample_bytes(size: int, seed: bytes = b"reprobase") -> bytes:
    """Mixed data as a root filesystem has it: text with repeats, binary, incompressible runs.

    Enough variety for a compressor's match finder, literal coder and block splitter to
    take every path they have (long and short matches, far distances, stored blocks).
    """
    out = bytearray()
    blocks = _stream(seed)
    while len(out) < size:
        b = next(blocks)
        kind = b[0] % 4
        if kind == 0:  # text made of a small vocabulary: many short matches
            out += b" ".join(_WORDS[x % len(_WORDS)] for x in b[1:17]) + b"\n"
        elif kind == 1:  # an earlier stretch again: a long match at a far distance
            if len(out) > 4096:
                start = int.from_bytes(b[1:4], "big") % (len(out) - 2048)
                out += out[start : start + 64 + b[4] * 4]
        elif kind == 2:  # incompressible bytes
            out += b"".join(next(blocks) for _ in range(1 + b[1] % 8))
        else:  # runs and small integers, as in binaries' tables
            out += bytes([b[1]]) * (b[2] % 40) + bytes(range(b[3] % 64))
    return bytes(out[:size])


def sample_tar() -> bytes:
    """A small source tar with what the canonical writer must handle: hard links, symlinks,
    long and non-ASCII names, a capability xattr, device nodes, late mtimes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:

        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **kw: object) -> None:
            t = tarfile.TarInfo(name)
            t.type = kind
            t.mtime = int(kw.get("mtime", EPOCH - 3600))  # type: ignore[call-overload]
            t.mode = int(kw.get("mode", 0o644))  # type: ignore[call-overload]
            t.linkname = str(kw.get("link", ""))
            t.uname = t.gname = "root"
            t.pax_headers = dict(kw.get("pax", {}))  # type: ignore[call-overload]
            t.size = len(data) if kind == tarfile.REGTYPE else 0
            tf.addfile(t, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("./usr/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/bin/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/bin/tool", data=sample_bytes(48_000, b"tool"), mode=0o755)
        add("./usr/bin/tool-alias", tarfile.LNKTYPE, link="./usr/bin/tool")
        add("./usr/bin/sh", tarfile.SYMTYPE, link="dash")
        add("./usr/share/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/share/doc/" + "x" * 120 + "/copyright", data=b"long name\n" * 40)
        add("./usr/share/zoneinfo/Amérique/Nouméa", data=sample_bytes(3000, b"tz"))
        add("./usr/bin/ping", data=b"\x7fELF ping", mode=0o4755)
        add("./etc/", tarfile.DIRTYPE, mode=0o755)
        add("./etc/hostname", data=b"localhost\n", mtime=EPOCH + 86400 * 3)
        add("./dev/", tarfile.DIRTYPE, mode=0o755)
        add("./dev/null", tarfile.CHRTYPE, mode=0o666)
    return buf.getvalue()


def layer_digests(comp: Compression) -> tuple[str, str]:
    """(diff_id, compressed digest) of the canonical layer of sample_tar()."""
    with tarfile.open(fileobj=io.BytesIO(sample_tar()), mode="r:") as src:
        out = io.BytesIO()
        res = write_layer_from(src, out, comp, EPOCH)
    return res.diff_id, res.digest


def answers() -> dict[str, str]:
    """What this machine computes for each known answer."""
    got: dict[str, str] = {}
    data = sample_bytes(192 * 1024)
    for comp in Compression:
        got[f"{comp.format}:sample"] = sha256_digest(b"".join(comp.encode(memoryview(data))))
        diff_id, digest = layer_digests(comp)
        got["tar:layer"] = diff_id
        got[f"{comp.format}:layer"] = digest
    got["json"] = sha256_digest(
        canonical_json({"é": [1, -2, "\u2603", None, True], "a": {"z": "", "b": "\x00"}})
    )
    return dict(sorted(got.items()))


# The answers of reprobase's pinned byte path (deflate 0.9.0, zstandard 0.25.0), the same
# on every CPU and Python we checked (docs/compression.md). If one changes, every image
# digest changes: only on purpose, together with the goldens in tests/golden/.
KNOWN_ANSWERS = {
    "gzip:layer": "sha256:9076cd49cafb1342e17b64531dc25df3afb5e4de80e138bca6cee6c55f636b55",
    "gzip:sample": "sha256:1d2f382d6b81d7ab26c6eef18f3f55100bfe399492ff6530dd38fe7165d5a6d1",
    "json": "sha256:5f419d36b0077ca366ae32a7c4c4b7280539f62c3a9eab49ffe266cad4e842e4",
    "tar:layer": "sha256:f1e3124492c9a096bf18723f82a451eaa7b61351bb84fb0cd18986110bb664fe",
    "zstd:layer": "sha256:cc8653785ce5cf527f368bd4b2c8a1f37d1fd42ddc8adc71922e4da4d132ffb7",
    "zstd:sample": "sha256:f95dac567276e7605ec1ed48d5a1fa019efacdacb6284f0fce2d086e714ea2ed",
}


@dataclass(frozen=True)
class SelfTest:
    passed: bool
    mismatches: tuple[str, ...]
    overridden: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "mismatches": list(self.mismatches),
            "overridden": self.overridden,
        }


def run_selftest() -> SelfTest:
    got = answers()
    bad = tuple(k for k in sorted(KNOWN_ANSWERS) if got.get(k) != KNOWN_ANSWERS[k])
    return SelfTest(not bad, bad)


def require_selftest(allow_mismatch: bool = False) -> SelfTest:
    """Refuse to build on a machine whose byte path differs, unless overridden."""
    result = run_selftest()
    if result.passed:
        return result
    if allow_mismatch:
        return SelfTest(False, result.mismatches, overridden=True)
    versions = ", ".join(c.describe() for c in Compression)
    raise UserError(
        f"this machine's byte path gives other bytes than reprobase's known answers "
        f"({', '.join(result.mismatches)}; {versions}): images built here would not "
        "reproduce on other machines",
        hint="reinstall reprobase with its pinned wheels (pip install --force-reinstall), "
        "or pass --allow-selftest-mismatch to build anyway for experiments "
        "(recorded in the build report)",
    )
