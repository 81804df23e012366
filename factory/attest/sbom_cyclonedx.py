"""CycloneDX 1.6 JSON (cyclonedx.org/docs/1.6/json) of an image's packages.

metadata.component is the image (type container); one component per installed .deb with
its purl (also its bom-ref), the .deb's SHA-256, the license expression Debian's copyright
file declares, where the .deb is fetched from (externalReferences distribution), and
Debian's fields as properties (architecture, source package). serialNumber is derived
from the content, timestamp is SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

from typing import Any

from factory.attest.sbom import Sbom, SbomPackage
from factory.common.canonical import canonical_json

MEDIA_TYPE = "application/vnd.cyclonedx+json"
IMAGE_REF = "image"


def _component(p: SbomPackage, repository_url: str) -> dict[str, Any]:
    purl = p.purl(repository_url)
    props = [
        ("reprobase:deb:architecture", p.pkg.arch),
        ("reprobase:deb:source", p.pkg.source),
        ("reprobase:deb:source-version", p.pkg.source_version),
    ]
    if not p.copyright_file:
        props.append(("reprobase:deb:copyright-file", "absent"))
    out: dict[str, Any] = {
        "type": "library" if p.pkg.name.startswith("lib") else "application",
        "bom-ref": purl,
        "name": p.pkg.name,
        "version": p.pkg.version,
        "purl": purl,
        "properties": [{"name": k, "value": v} for k, v in props],
    }
    if p.pkg.summary:
        out["description"] = p.pkg.summary
    if p.pkg.maintainer:
        out["publisher"] = p.pkg.maintainer
    expr = p.license_expression()
    if expr:
        out["licenses"] = [{"expression": expr}]
    if p.deb:
        out["hashes"] = [{"alg": "SHA-256", "content": p.deb.sha256}]
        if repository_url:
            out["externalReferences"] = [
                {"type": "distribution", "url": repository_url + p.deb.filename}
            ]
    return out


def cyclonedx_document(sbom: Sbom) -> dict[str, Any]:
    s = sbom.subject
    components = [_component(p, p.repository_url(s)) for p in sbom.packages]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{sbom.content_id('cyclonedx')}",
        "version": 1,
        "metadata": {
            "timestamp": s.created,
            "tools": {
                "components": [
                    {"type": "application", "name": "reprobase", "version": s.tool_version}
                ]
            },
            "component": {
                "type": "container",
                "bom-ref": IMAGE_REF,
                "name": s.image,
                "version": s.snapshot,
                "properties": [{"name": "reprobase:platform", "value": s.platform}],
            },
        },
        "components": components,
        "dependencies": [
            {"ref": IMAGE_REF, "dependsOn": [c["bom-ref"] for c in components]},
        ],
    }


def render(sbom: Sbom) -> bytes:
    return canonical_json(cyclonedx_document(sbom))
