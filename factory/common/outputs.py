"""Every output we write (layouts, reports, archives, mismatch evidence): is it ours, and
replacing it atomically.

The one rule, for every command: a path that exists and is not a reprobase artefact of
the kind about to be written is refused (`UserError`, exit 2). `--force` lets one of our
artefacts of *another* kind be replaced (a report directory where a layout goes); it never
lets anything else be replaced: not a foreign directory, not a file we did not write, not
`/`, the home directory, the current directory or one of its parents.

Replacing is write beside, rename, then remove the old: the new output is assembled in a
hidden directory next to the destination (same file system, so renames are atomic), the
old output is renamed into that directory, the new one renamed into place, and only then
is the old one removed. A failure at any point puts the old output back and removes the
hidden directory: no `.old`, no `.tmp` is ever left behind.

`check()` is called by the commands before any build starts; `replacing()` checks again
when the output is installed (the path may have changed during a 45-minute build).
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cache_proxy.paths import protected_reason, unsafe_path_reason
from factory.common.errors import UserError

_HEX = frozenset("0123456789abcdef")
_OUR_PREFIX = "org.reprobase."  # factory.image.config.LABEL_PREFIX (not imported: no cycle)


# What a layout of ours holds: the OCI image layout's files, and the list of artifacts
# attached to its images (SBOMs, provenance; factory.attest.store writes it).
REFERRERS_FILE = "referrers.json"
LAYOUT_FILES = frozenset({"oci-layout", "index.json", "blobs", REFERRERS_FILE})


def _is_blob_name(name: str) -> bool:
    return len(name) == 64 and set(name) <= _HEX


def _is_layout(path: Path) -> bool:
    """An OCI image layout whose images carry our annotations, and nothing else."""
    if not path.is_dir() or path.is_symlink():
        return False
    if not {p.name for p in path.iterdir()} <= LAYOUT_FILES:
        return False
    blobs = path / "blobs"
    try:
        if not (path / "oci-layout").is_file() or [p.name for p in blobs.iterdir()] != ["sha256"]:
            return False
        if not all(_is_blob_name(p.name) for p in (blobs / "sha256").iterdir()):
            return False
        index = json.loads((path / "index.json").read_bytes())
        entries = index["manifests"]
        if not isinstance(entries, list) or not entries:
            return False
        for entry in entries:
            digest = str(entry["digest"])
            name = digest.removeprefix("sha256:")
            if not _is_blob_name(name):
                return False
            blob = blobs / "sha256" / name
            if blob.stat().st_size > 4 << 20:  # an index or manifest, never a layer
                return False
            annotations = json.loads(blob.read_bytes()).get("annotations") or {}
            if not any(str(k).startswith(_OUR_PREFIX) for k in annotations):
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


def _is_report(path: Path) -> bool:
    """index.html, results.json (our schema) and images/*.html, nothing else."""
    if not path.is_dir() or path.is_symlink():
        return False
    try:
        if {p.name for p in path.iterdir()} - {"index.html", "results.json", "images"}:
            return False
        if not (path / "index.html").is_file():
            return False
        doc = json.loads((path / "results.json").read_bytes())
        if not (isinstance(doc, dict) and {"schema", "summary", "records"} <= doc.keys()):
            return False
        images = path / "images"
        if images.exists() and not all(
            p.is_file() and p.suffix == ".html" for p in images.iterdir()
        ):
            return False
    except (OSError, ValueError):
        return False
    return True


def _is_archive(path: Path) -> bool:
    """A tar of an OCI layout plus docker's manifest.json, as factory.registry.archive writes."""
    if not path.is_file() or path.is_symlink():
        return False
    wanted = {"blobs", "blobs/sha256", "index.json", "manifest.json", "oci-layout"}
    try:
        with tarfile.open(path, "r:") as tar:
            names = set()
            for member in tar:  # headers only: the blobs' bytes are skipped by seeking
                names.add(member.name)
                if member.name not in wanted and not (
                    member.name.startswith("blobs/sha256/") and _is_blob_name(member.name[13:])
                ):
                    return False
    except (OSError, tarfile.TarError, ValueError):
        return False
    return wanted <= names


def _is_mismatch(path: Path) -> bool:
    """The evidence of a failed double build: a/, b/, report.json, report.txt."""
    if not path.is_dir() or path.is_symlink():
        return False
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    return "report.json" in names and names <= {"a", "b", "report.json", "report.txt"}


class OutputKind(enum.Enum):
    """What a command writes; each kind knows how to recognise an earlier one of itself."""

    LAYOUT = "a reprobase OCI image layout"
    REPORT = "a reprobase report"
    ARCHIVE = "a reprobase image archive"
    MISMATCH = "reprobase mismatch evidence"

    @property
    def recognise(self) -> Callable[[Path], bool]:
        return {
            OutputKind.LAYOUT: _is_layout,
            OutputKind.REPORT: _is_report,
            OutputKind.ARCHIVE: _is_archive,
            OutputKind.MISMATCH: _is_mismatch,
        }[self]

    @property
    def is_dir(self) -> bool:
        return self is not OutputKind.ARCHIVE


def kind_of(path: Path) -> OutputKind | None:
    """Which of our artefacts path is (None: not ours, or nothing there)."""
    for kind in OutputKind:
        if kind.recognise(path):
            return kind
    return None


def _empty_dir(path: Path) -> bool:
    try:
        return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    except OSError:
        return False


def _probe_writable(dest: Path, flag: str) -> None:
    """Create and remove a directory where dest's new version will be assembled."""
    why = unsafe_path_reason(dest)  # the one rule (cache_proxy.paths)
    if why is not None:
        raise UserError(f"cannot write {flag} {dest}: {why}", hint="choose a writable path")


def check(dest: Path, kind: OutputKind, *, force: bool = False, flag: str = "--output") -> None:
    """Refuse dest unless it is absent, an empty directory, or ours (see the module doc)."""
    why = protected_reason(dest)
    if why is not None:
        raise UserError(
            f"refusing to write {flag} {dest}: it is {why}",
            hint=f"give a new path, e.g. {flag} out/NAME",
        )
    if dest.is_symlink():
        raise UserError(
            f"refusing to replace {dest}: it is a symbolic link",
            hint="give the path it points to, or a new path",
        )
    if dest.exists() and not (kind.is_dir and _empty_dir(dest)):
        found = kind_of(dest)
        if found is None:
            what = "directory" if dest.is_dir() else "file" if dest.is_file() else "path"
            raise UserError(
                f"refusing to replace {dest}: the {what} exists and is not {kind.value}",
                hint="give a new path, or remove it yourself; --force only replaces "
                "reprobase's own outputs",
            )
        if found is not kind and not force:
            raise UserError(
                f"refusing to replace {dest}: it is {found.value}, not {kind.value}",
                hint="--force replaces it",
            )
    _probe_writable(dest, flag)


def _swap(new: Path, dest: Path, attic: Path) -> None:
    """Put new at dest; whatever dest was goes to attic (removed by the caller)."""
    if not dest.exists():
        os.rename(new, dest)
        return
    if new.is_file() and dest.is_file():
        os.replace(new, dest)  # one atomic step for files
        return
    old = attic / "old"
    os.rename(dest, old)
    try:
        os.rename(new, dest)
    except BaseException:
        os.rename(old, dest)  # the old output back: a failure changes nothing
        raise


@contextmanager
def replacing(
    dest: Path, kind: OutputKind, *, force: bool = False, flag: str = "--output"
) -> Iterator[Path]:
    """Yield a path beside dest to write the new output to (a directory or a file, not
    yet created); when the block succeeds, it replaces dest atomically. On failure,
    dest is untouched and nothing is left beside it."""
    check(dest, kind, force=force, flag=flag)
    dest = dest.absolute()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        attic = Path(tempfile.mkdtemp(prefix=f".{dest.name}.reprobase-", dir=dest.parent))
    except OSError as exc:
        raise UserError(f"cannot write {flag} {dest}: {exc.strerror or exc}") from None
    try:
        yield attic / "new"
        check(dest, kind, force=force, flag=flag)  # still ours after a long build?
        _swap(attic / "new", dest, attic)
    except OSError as exc:
        raise UserError(f"cannot write {flag} {dest}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(attic, ignore_errors=True)


def install_dir(
    src: Path, dest: Path, kind: OutputKind, *, force: bool = False, flag: str = "--output"
) -> None:
    """Move the finished directory src to dest (replacing ours, refusing anything else)."""
    with replacing(dest, kind, force=force, flag=flag) as new:
        try:
            os.rename(src, new)
        except OSError:
            shutil.copytree(src, new, symlinks=True)  # another file system
            shutil.rmtree(src, ignore_errors=True)
