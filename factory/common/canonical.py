"""Canonical JSON: the only way reprobase serialises anything that gets a digest.

Sorted keys, compact separators, UTF-8 without escapes: the same object always
gives the same bytes, whatever dict insertion order or Python version made it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
