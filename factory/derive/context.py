"""The build context as a canonical tar: what the image records and what every build uses.

Both builds of a double build, and any later rebuild, run from this tar unpacked into
a fresh directory, never from the user's directory itself, so that what was recorded
is exactly what was built. Nondeterminism removed, each with its reason:
- order: entries sorted by path bytes (directory listings come in any order);
- times: mtime 0 in the tar, and SOURCE_DATE_EPOCH on unpacking (a checkout's file
  times are the clone's, and COPY keeps them);
- modes: 0755 when any execute bit is set, else 0644; directories 0755 (a checkout's
  modes follow the cloning user's umask);
- owners: 0:0, no names (the user's uid is a host fact);
- hard links become copies, special files are refused (a socket or a device cannot be
  recorded);
- what `.containerignore` (or `.dockerignore`) excludes is left out (factory.derive.ignore):
  the recorded context is what the builds see, not a checkout's `.git` and caches.
"""

from __future__ import annotations

import base64
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from factory.common.canonical import sha256_digest
from factory.common.errors import UserError
from factory.derive.ignore import Ignore
from factory.image.compress import Compression

MAX_CONTEXT = 256 << 20  # bytes of file data: a context is sources, not a data set
EMBED_LIMIT = 48 << 10  # compressed bytes: at most this is embedded in the annotations
MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
ARTIFACT_TYPE = "application/vnd.reprobase.context.v1+tar"


@dataclass(frozen=True)
class Context:
    tar: bytes  # canonical, uncompressed

    @property
    def digest(self) -> str:
        return sha256_digest(self.tar)

    @property
    def files(self) -> int:
        with tarfile.open(fileobj=io.BytesIO(self.tar), mode="r:") as tf:
            return sum(1 for m in tf.getmembers() if m.isreg())

    def embedded(self) -> str | None:
        """base64 of the gzip'd tar, if small enough to travel in an annotation."""
        gz = b"".join(bytes(c) for c in Compression.GZIP.encode(memoryview(self.tar)))
        return base64.b64encode(gz).decode() if len(gz) <= EMBED_LIMIT else None

    @classmethod
    def from_embedded(cls, text: str, digest: str) -> Context:
        import gzip

        try:
            ctx = cls(gzip.decompress(base64.b64decode(text, validate=True)))
        except (ValueError, OSError, EOFError):
            raise UserError("the image's embedded build context is corrupt") from None
        ctx.check(digest)
        return ctx

    def check(self, digest: str) -> None:
        if self.digest != digest:
            raise UserError(
                f"the build context found has digest {self.digest}, the image records {digest}",
                hint="it was altered: a rebuild from it would not be the recorded build",
            )


def _info(name: str) -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    t.uid = t.gid = 0
    t.uname = t.gname = ""
    t.mtime = 0
    return t


def pack(root: Path) -> Context:
    """The canonical tar of the directory root (pure but for reading it)."""
    if not root.is_dir():
        raise UserError(f"--context {root}: not a directory")
    paths = _selected(root, Ignore.of(root))
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
        for p in paths:
            name = p.relative_to(root).as_posix()
            st = p.lstat()
            t = _info(name)
            if stat.S_ISLNK(st.st_mode):
                t.type, t.linkname, t.mode = tarfile.SYMTYPE, os.readlink(p), 0o777
                tf.addfile(t)
            elif stat.S_ISDIR(st.st_mode):
                t.type, t.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(t)
            elif stat.S_ISREG(st.st_mode):
                t.mode = 0o755 if st.st_mode & 0o111 else 0o644
                t.size = st.st_size
                total += st.st_size
                if total > MAX_CONTEXT:
                    raise UserError(
                        f"--context {root} holds more than {MAX_CONTEXT >> 20} MiB",
                        hint="the context is recorded with the image: keep only what the "
                        "Containerfile copies",
                    )
                with p.open("rb") as fh:
                    tf.addfile(t, fh)
            else:
                raise UserError(
                    f"--context: {p} is a special file (socket, device or fifo)",
                    hint="a build context holds files, directories and symbolic links only",
                )
    return Context(buf.getvalue())


def _selected(root: Path, ignore: Ignore) -> list[Path]:
    """Every path under root the ignore file keeps, sorted by path bytes; a directory it
    excludes is still listed when something below it is kept (`!` re-includes)."""
    files: list[Path] = []
    dirs: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel = here.relative_to(root).as_posix()
        dirnames[:] = sorted(
            d for d in dirnames if not ignore.prune(d if rel == "." else f"{rel}/{d}")
        )
        dirs += [here / d for d in dirnames]
        for f in filenames:
            if not ignore.excluded((here / f).relative_to(root).as_posix()):
                files.append(here / f)
    kept_parents = {p for f in files for p in f.relative_to(root).parents}
    under = {d: d.relative_to(root) for d in dirs}
    kept_dirs = [
        d for d in dirs if under[d] in kept_parents or not ignore.excluded(under[d].as_posix())
    ]
    paths = files + kept_dirs
    paths.sort(key=lambda p: os.fsencode(p.relative_to(root)))
    return paths


def _safe(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not name.startswith("/") and ".." not in parts


def unpack(ctx: Context, dest: Path, epoch: int) -> Path:
    """Write the context into the new directory dest, every time SOURCE_DATE_EPOCH."""
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(ctx.tar), mode="r:") as tf:
        members = tf.getmembers()
        for m in members:
            if not _safe(m.name):
                raise UserError(f"the build context holds an unsafe path {m.name!r}")
            target = dest / m.name
            if m.isdir():
                target.mkdir(exist_ok=True)
            elif m.issym():
                os.symlink(m.linkname, target)
            elif m.isreg():
                data = tf.extractfile(m)
                assert data is not None
                with target.open("wb") as out:
                    out.write(data.read())
            else:
                raise UserError(f"the build context holds an unsupported entry {m.name!r}")
        # modes and times last: a directory's mtime changes with every entry made in it
        for m in reversed(members):
            target = dest / m.name
            if not m.issym():
                os.chmod(target, m.mode)
            os.utime(target, (epoch, epoch), follow_symlinks=False)
    os.chmod(dest, 0o755)
    os.utime(dest, (epoch, epoch))
    return dest
