"""in-toto Statement v1 with a SLSA Provenance v1 predicate for a (double) build.

in-toto attestation framework, Statement v1 (github.com/in-toto/attestation, spec/v1);
SLSA Provenance v1 (slsa.dev/spec/v1.0/provenance). Pure: every input is passed in. No
wall-clock time and no build directory is recorded: the provenance of an image built
twice from the same inputs has the same bytes (times are the image's SOURCE_DATE_EPOCH).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from factory.common.canonical import canonical_json

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
# Our own URIs name our build type and builder; the project has no domain of its own.
BUILD_TYPE = "https://reprobase.invalid/buildtypes/mmdebstrap-double-build/v1"
BUILDER_ID = "https://reprobase.invalid/builders/reprobase"
# environment keys that describe how a build differed, not where it ran (workdir is a
# temporary path: recording it would make two identical builds' provenance differ)
ENV_KEYS = ("hostname", "TZ", "LANG", "umask", "clock_offset_days")


@dataclass(frozen=True)
class BuildRecord:
    name: str  # "A", "B"
    env: dict[str, str]
    digests: dict[str, Any]  # BuildResult.digests()


@dataclass(frozen=True)
class ProvenanceInput:
    image: str  # debian:bookworm
    index_digest: str
    manifests: tuple[tuple[str, str], ...]  # (platform, manifest digest)
    recipe: dict[str, Any]
    recipe_digest: str
    snapshot: str
    epoch: int
    architectures: tuple[str, ...]
    packages_from: str
    mirror: str | None
    versions: tuple[tuple[str, str], ...]  # (tool, version): reprobase, mmdebstrap, compressor
    releases: tuple[tuple[str, str], ...]  # (URI of an InRelease, sha256 hex)
    builds: tuple[BuildRecord, ...]


def subject(name: str, digest: str) -> dict[str, Any]:
    alg, _, hexd = digest.partition(":")
    return {"name": name, "digest": {alg: hexd}}


def _tool_uri(tool: str, version: str) -> str:
    if tool == "mmdebstrap":
        return f"pkg:deb/debian/mmdebstrap@{version}"
    if tool == "reprobase":
        return f"pkg:pypi/reprobase@{version}"
    return f"urn:reprobase:tool:{tool}:{version.replace(' ', '_')}"


def predicate(p: ProvenanceInput) -> dict[str, Any]:
    deps: list[dict[str, Any]] = [
        {"uri": uri, "digest": {"sha256": h}} for uri, h in sorted(p.releases)
    ]
    deps += [
        {"name": tool, "uri": _tool_uri(tool, v), "annotations": {"version": v}}
        for tool, v in sorted(p.versions)
    ]
    external: dict[str, Any] = {
        "image": p.image,
        "recipe": p.recipe,
        "recipeDigest": p.recipe_digest,
        "snapshot": p.snapshot,
        "architectures": list(p.architectures),
        "packagesFrom": p.packages_from,
    }
    if p.mirror:
        external["mirror"] = p.mirror
    byproducts = [
        {
            "name": f"build-{b.name}",
            "annotations": {"environment": {k: b.env[k] for k in ENV_KEYS if k in b.env},
                            "digests": b.digests},
        }
        for b in sorted(p.builds, key=lambda b: b.name)
    ]  # fmt: skip
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {"sourceDateEpoch": p.epoch},
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID, "version": dict(p.versions)},
            "metadata": {"invocationId": f"{p.image}@{p.snapshot}/{p.index_digest}"},
            "byproducts": byproducts,
        },
    }


def statement(p: ProvenanceInput) -> dict[str, Any]:
    subjects = [subject(p.image, p.index_digest)] + [
        subject(f"{p.image}@{plat}", d) for plat, d in sorted(p.manifests)
    ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": SLSA_PROVENANCE,
        "predicate": predicate(p),
    }


def render(p: ProvenanceInput) -> bytes:
    return canonical_json(statement(p))
