"""An image reference to a local OCI layout: a layout directory, `oci:DIR[:TAG]`, or a
registry reference (pulled into the work directory)."""

from __future__ import annotations

from pathlib import Path

from factory.common.errors import UserError


def fetch(reference: str, workdir: Path) -> tuple[Path, str | None]:
    """An image to a local layout: (layout dir, tag or None)."""
    ref = reference.removeprefix("oci:")
    if Path(ref).is_dir():
        return Path(ref), None
    path, sep, tag = ref.rpartition(":")
    if sep and Path(path).is_dir():
        return Path(path), tag
    if reference.startswith("oci:"):
        raise UserError(f"{ref}: no such OCI layout directory")
    from factory.registry.pull import pull_to_layout_sync

    return pull_to_layout_sync(reference, workdir / "pulled"), None
