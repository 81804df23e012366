"""OCI distribution client: push layouts, pull images, attach referrers, write archives."""

from __future__ import annotations

from factory.registry.pull import pull_to_layout, pull_to_layout_sync
from factory.registry.push import PushResult, push_layout, push_layout_sync
from factory.registry.reference import Reference, parse_reference
from factory.registry.session import ClientConfig

__all__ = [
    "ClientConfig",
    "PushResult",
    "Reference",
    "parse_reference",
    "pull_to_layout",
    "pull_to_layout_sync",
    "push_layout",
    "push_layout_sync",
]
