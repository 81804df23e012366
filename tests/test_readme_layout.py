"""The README's layout section names every subpackage of factory/, and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_layout_matches_the_tree() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout\n") :]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    listed = set(re.findall(r"^\s+- `factory/([a-z_]+)/`", section, re.M))
    tree = {
        p.parent.name
        for p in (ROOT / "factory").glob("*/__init__.py")
        if not p.parent.name.startswith("_")
    }
    assert listed == tree, (
        f"in the tree, not in README: {sorted(tree - listed)}; "
        f"in README, not in the tree: {sorted(listed - tree)}"
    )
