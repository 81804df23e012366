"""Field-by-field comparison of JSON documents (index, manifest, config), pure."""

from __future__ import annotations

import json
from typing import Any

from factory.diffing.model import DiffKind, Value


def key_path(prefix: str, key: str) -> str:
    if key.replace("_", "").replace("-", "").isalnum():
        return f"{prefix}.{key}" if prefix else key
    return f'{prefix}["{key}"]'


def flatten(obj: Any, prefix: str = "") -> dict[str, Value]:
    """Dicts by key, lists of objects by index; lists of scalars and scalars as values."""
    out: dict[str, Value] = {}
    if isinstance(obj, dict):
        for key in sorted(obj):
            out.update(flatten(obj[key], key_path(prefix, str(key))))
    elif isinstance(obj, list) and any(isinstance(x, dict | list) for x in obj):
        for i, item in enumerate(obj):
            out.update(flatten(item, f"{prefix}[{i}]"))
    elif isinstance(obj, list):
        out[prefix] = json.dumps(obj, ensure_ascii=False)
    elif isinstance(obj, bool) or obj is None:
        out[prefix] = json.dumps(obj)
    elif isinstance(obj, str | int | float):
        out[prefix] = obj
    else:
        out[prefix] = json.dumps(obj, ensure_ascii=False)
    return out


def compare_json(
    a: Any, b: Any, skip: tuple[str, ...] = ()
) -> list[tuple[str, DiffKind, Value, Value]]:
    """(field, kind, value in A, value in B) for each differing leaf, skipping top-level keys."""
    if isinstance(a, dict) and isinstance(b, dict):
        a = {k: v for k, v in a.items() if k not in skip}
        b = {k: v for k, v in b.items() if k not in skip}
    fa, fb = flatten(a), flatten(b)
    out: list[tuple[str, DiffKind, Value, Value]] = []
    for key in sorted(fa.keys() | fb.keys()):
        if key not in fb:
            out.append((key, DiffKind.REMOVED, fa[key], None))
        elif key not in fa:
            out.append((key, DiffKind.ADDED, None, fb[key]))
        elif fa[key] != fb[key]:
            out.append((key, DiffKind.CHANGED, fa[key], fb[key]))
    return out
