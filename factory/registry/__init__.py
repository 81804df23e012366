"""OCI distribution client: push layouts, pull images, attach referrers, write archives.

See factory/registry/push.py for the push order, auth.py for where credentials
come from, referrers.py for OCI 1.1 referrers with the tag-schema fallback.
"""

from __future__ import annotations

from factory.registry.archive import write_archive
from factory.registry.pull import pull_to_layout, pull_to_layout_sync
from factory.registry.push import (
    PushResult,
    check_push_access_sync,
    check_tags,
    push_layout,
    push_layout_sync,
)
from factory.registry.reference import Reference, parse_reference
from factory.registry.referrers import (
    attach_referrer,
    attach_referrer_sync,
    fallback_tag,
    list_referrers,
)
from factory.registry.session import ClientConfig

__all__ = [
    "ClientConfig",
    "PushResult",
    "Reference",
    "attach_referrer",
    "attach_referrer_sync",
    "check_push_access_sync",
    "check_tags",
    "fallback_tag",
    "list_referrers",
    "parse_reference",
    "pull_to_layout",
    "pull_to_layout_sync",
    "push_layout",
    "push_layout_sync",
    "write_archive",
]
