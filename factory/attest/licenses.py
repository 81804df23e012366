"""Licenses where Debian states them: machine-readable copyright files (DEP-5).

A package's `/usr/share/doc/NAME/copyright` in the copyright-format 1.0 names each
license in `License:` fields; older free-form files state no machine-readable license,
and the SBOM then says NOASSERTION rather than guessing. Debian's short names are
mapped to SPDX identifiers where the meaning is the same; any other name becomes a
`LicenseRef-Debian-...` that the SPDX document declares (spdx-tools requires it).
"""

from __future__ import annotations

import re

FORMAT_PREFIX = "format:"
# Debian short name (lower case) -> SPDX identifier. Only exact equivalents.
SPDX_OF = {
    "apache-2.0": "Apache-2.0",
    "artistic-2.0": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause",
    "cc0-1.0": "CC0-1.0",
    "expat": "MIT",
    "mit": "MIT",
    "gfdl-1.2+": "GFDL-1.2-or-later",
    "gfdl-1.3+": "GFDL-1.3-or-later",
    "gpl-1+": "GPL-1.0-or-later",
    "gpl-2": "GPL-2.0-only",
    "gpl-2+": "GPL-2.0-or-later",
    "gpl-2.0": "GPL-2.0-only",
    "gpl-2.0+": "GPL-2.0-or-later",
    "gpl-3": "GPL-3.0-only",
    "gpl-3+": "GPL-3.0-or-later",
    "gpl-3.0+": "GPL-3.0-or-later",
    "isc": "ISC",
    "lgpl-2": "LGPL-2.0-only",
    "lgpl-2+": "LGPL-2.0-or-later",
    "lgpl-2.0+": "LGPL-2.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-2.1+": "LGPL-2.1-or-later",
    "lgpl-3": "LGPL-3.0-only",
    "lgpl-3+": "LGPL-3.0-or-later",
    "mpl-2.0": "MPL-2.0",
    "zlib": "Zlib",
    "curl": "curl",
    "openssl": "OpenSSL",
    "x11": "X11",
}
_OPERATOR = re.compile(r"\s+(or|and)\s+", re.IGNORECASE)
_REF_CHARS = re.compile(r"[^A-Za-z0-9.-]+")


def declared(copyright_text: str) -> tuple[str, ...] | None:
    """The distinct `License:` names of a DEP-5 file, sorted; None for a free-form file."""
    head = copyright_text.lstrip().partition("\n")[0].lower()
    if not head.startswith(FORMAT_PREFIX):
        return None
    names = set()
    for line in copyright_text.splitlines():
        if line.lower().startswith("license:"):
            name = line.partition(":")[2].strip()
            if name:
                names.add(name)
    return tuple(sorted(names))


def license_ref(debian_name: str) -> str:
    return "LicenseRef-Debian-" + _REF_CHARS.sub("-", debian_name).strip("-")


def spdx_term(debian_name: str) -> str:
    """One Debian license name (no operators) as an SPDX identifier or LicenseRef."""
    return SPDX_OF.get(debian_name.strip().lower()) or license_ref(debian_name.strip())


def spdx_expression(names: tuple[str, ...]) -> str:
    """All of a package's license fields as one SPDX expression: each field's own
    `or`/`and` kept, the fields joined by AND (each governs some of the files)."""
    parts = []
    for name in names:
        tokens = _OPERATOR.split(name)
        terms = [t.upper() if i % 2 else spdx_term(t) for i, t in enumerate(tokens)]
        expr = " ".join(terms)
        parts.append(f"({expr})" if len(terms) > 1 and len(names) > 1 else expr)
    unique = sorted(set(parts))
    return " AND ".join(unique)


def refs_in(expression: str) -> tuple[str, ...]:
    return tuple(
        sorted({t for t in re.split(r"[\s()]+", expression) if t.startswith("LicenseRef-")})
    )
