"""SPDX 2.3 JSON (spdx.github.io/spdx-spec/v2.3) of an image's packages.

One package for the image (primaryPackagePurpose CONTAINER) that CONTAINS one package per
installed .deb: its version, the SHA-256 of the .deb (checksums), where it is fetched
from (downloadLocation, the snapshot URL), the purl (externalRefs) and the license
Debian's copyright file declares (licenseDeclared; NOASSERTION when it declares none in
machine-readable form). Every LicenseRef used is declared in hasExtractedLicensingInfos.
"""

from __future__ import annotations

import re
from typing import Any

from factory.attest import licenses
from factory.attest.sbom import Sbom, SbomPackage
from factory.common.canonical import canonical_json

MEDIA_TYPE = "application/spdx+json"
NOASSERTION = "NOASSERTION"
_ID_CHARS = re.compile(r"[^A-Za-z0-9.-]")
_URI_OK = re.compile(r"^https?://[^\s<>\"]+$")


def spdx_id(p: SbomPackage) -> str:
    name = p.pkg.name.replace("+", "plus")
    return _ID_CHARS.sub("-", f"SPDXRef-deb-{name}-{p.pkg.arch}")


def _package(p: SbomPackage, repository_url: str) -> dict[str, Any]:
    expr = p.license_expression()
    out: dict[str, Any] = {
        "SPDXID": spdx_id(p),
        "name": p.pkg.name,
        "versionInfo": p.pkg.version,
        "downloadLocation": (repository_url + p.deb.filename)
        if p.deb and repository_url
        else NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": expr or NOASSERTION,
        "copyrightText": NOASSERTION,
        "sourceInfo": f"built from Debian source package {p.pkg.source} {p.pkg.source_version}",
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl(repository_url),
            }
        ],
        "primaryPackagePurpose": "LIBRARY" if p.pkg.name.startswith("lib") else "APPLICATION",
    }
    if p.deb:
        out["checksums"] = [{"algorithm": "SHA256", "checksumValue": p.deb.sha256}]
        out["packageFileName"] = p.deb.filename.rpartition("/")[2]
    if p.pkg.summary:
        out["summary"] = p.pkg.summary
    if _URI_OK.match(p.pkg.homepage):
        out["homepage"] = p.pkg.homepage
    if not p.copyright_file:
        out["comment"] = "the image has no /usr/share/doc copyright file for this package"
    return out


def spdx_document(sbom: Sbom) -> dict[str, Any]:
    s = sbom.subject
    image_id = "SPDXRef-Image"
    packages = [_package(p, p.repository_url(s)) for p in sbom.packages]
    refs: dict[str, str] = {}
    for p in sbom.packages:
        for name in p.licenses or ():
            for term in re.split(r"\s+(?:or|and)\s+", name, flags=re.IGNORECASE):
                t = licenses.spdx_term(term)
                if t.startswith("LicenseRef-"):
                    refs[t] = term.strip()
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
         "relatedSpdxElement": image_id},
    ] + [
        {"spdxElementId": image_id, "relationshipType": "CONTAINS",
         "relatedSpdxElement": pkg["SPDXID"]}
        for pkg in packages
    ]  # fmt: skip
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": s.name,
        "documentNamespace": f"urn:uuid:{sbom.content_id('spdx')}",
        "creationInfo": {
            "created": s.created,
            "creators": [f"Tool: reprobase-{s.tool_version}"],
            "comment": "created = the image's SOURCE_DATE_EPOCH; package hashes are the "
            "SHA-256 apt verified each .deb against (signed Release -> Packages)",
        },
        "packages": [
            {
                "SPDXID": image_id,
                "name": s.image,
                "versionInfo": s.snapshot,
                "downloadLocation": NOASSERTION,
                "filesAnalyzed": False,
                "licenseConcluded": NOASSERTION,
                "licenseDeclared": NOASSERTION,
                "copyrightText": NOASSERTION,
                "primaryPackagePurpose": "CONTAINER",
                "description": f"Debian root filesystem of {s.image} for {s.platform}, "
                f"packages pinned to snapshot {s.snapshot}",
            },
            *packages,
        ],
        "relationships": relationships,
    }
    if refs:
        doc["hasExtractedLicensingInfos"] = [
            {
                "licenseId": ref,
                "name": name,
                "extractedText": f"The license Debian's copyright files call {name!r} "
                "(see /usr/share/doc/PACKAGE/copyright in the image).",
            }
            for ref, name in sorted(refs.items())
        ]
    return doc


def render(sbom: Sbom) -> bytes:
    return canonical_json(spdx_document(sbom))
