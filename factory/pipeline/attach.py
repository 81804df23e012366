"""The build's attestations, kept in its layout as referrers of the image index.

Per architecture an SPDX 2.3 and a CycloneDX 1.6 SBOM (from the facts the debhashes hook
read in the chroot); for the build an in-toto statement with SLSA provenance naming both
builds of the double build. They go to the layout's referrers.json (factory.attest.store)
and out to registries with the image (factory.publish.targets), never into the index.
"""

from __future__ import annotations

from pathlib import Path

from factory import __version__
from factory.attest import provenance, sbom_cyclonedx, sbom_spdx
from factory.attest.kinds import ANN_KIND, ANN_PLATFORM, ANN_PREDICATE, KIND_PROVENANCE
from factory.attest.sbom import Sbom, SbomSubject, sbom_from_facts
from factory.attest.store import add_local_referrer
from factory.image import oci
from factory.pipeline.build import ArchResult, BuildRequest, BuildResult
from factory.source.snapshot import snapshot_url

SBOM_FORMATS = {"spdx": sbom_spdx, "cyclonedx": sbom_cyclonedx}


def repositories(req: BuildRequest) -> tuple[tuple[str, str], ...]:
    """Where the .debs are, as the image's own apt sources name them."""
    if req.source.kind == "snapshot":
        return tuple((a, snapshot_url(a, req.pin)) for a in ("debian", "debian-security"))
    prov = req.provenance
    out = []
    if prov.mirror:
        out.append(("debian", prov.mirror.rstrip("/") + "/"))
    if prov.security_mirror and "://" in prov.security_mirror:
        out.append(("debian-security", prov.security_mirror.rstrip("/") + "/"))
    return tuple(out)


def arch_sbom(req: BuildRequest, result: ArchResult) -> Sbom:
    subject = SbomSubject(
        image=req.recipe.ref,
        arch=result.arch.debian,
        platform=result.arch.oci_platform_string(),
        snapshot=req.pin.text,
        epoch=req.pin.epoch,
        repositories=repositories(req),
        tool_version=__version__,
    )
    return sbom_from_facts(result.facts, subject)


def attach_sboms(
    layout: Path, index: oci.Descriptor, req: BuildRequest, results: list[ArchResult]
) -> None:
    for r in results:
        sbom = arch_sbom(req, r)
        for fmt, module in sorted(SBOM_FORMATS.items()):
            data = module.render(sbom)
            ann = {ANN_KIND: f"sbom-{fmt}", ANN_PLATFORM: r.arch.oci_platform_string()}
            desc = add_local_referrer(
                layout, index, module.MEDIA_TYPE, data, module.MEDIA_TYPE, ann
            )
            r.attestations[f"sbom_{fmt}"] = desc.digest


def provenance_input(req: BuildRequest, builds: list[BuildResult]) -> provenance.ProvenanceInput:
    first = builds[0]
    repos = dict(repositories(req))
    releases = sorted(
        {
            (repos.get(rel["archive"], rel["archive"] + "/") + rel["path"], rel["sha256"])
            for r in first.arches
            for rel in r.facts.get("releases", [])
        }
    )
    prov = req.provenance
    return provenance.ProvenanceInput(
        image=req.recipe.ref,
        index_digest=first.index_digest,
        manifests=tuple((r.arch.oci_platform_string(), r.manifest.digest) for r in first.arches),
        recipe=req.recipe.to_json(),
        recipe_digest=req.recipe.digest(),
        snapshot=req.pin.text,
        epoch=req.pin.epoch,
        architectures=tuple(a.debian for a in req.arches),
        packages_from=prov.packages_from.value,
        mirror=prov.mirror,
        versions=(
            ("compressor", prov.compressor),
            ("mmdebstrap", prov.mmdebstrap),
            ("reprobase", __version__),
        ),
        releases=tuple(releases),
        builds=tuple(
            provenance.BuildRecord(b.env.name, b.env.describe(), b.digests()) for b in builds
        ),
    )


def attach_provenance(layout: Path, req: BuildRequest, builds: list[BuildResult]) -> oci.Descriptor:
    """The unsigned statement (a signature is added by whoever holds a key: `--key`)."""
    data = provenance.render(provenance_input(req, builds))
    ann = {ANN_KIND: KIND_PROVENANCE, ANN_PREDICATE: provenance.SLSA_PROVENANCE}
    return add_local_referrer(
        layout, builds[0].index, provenance.PAYLOAD_TYPE, data, provenance.PAYLOAD_TYPE, ann
    )


def compare_attestations(a: BuildResult, b: BuildResult) -> list[str]:
    """The SBOMs must be as reproducible as the image: one line per one that differs."""
    diffs = []
    for ra, rb in zip(a.arches, b.arches, strict=False):
        for key in sorted(set(ra.attestations) | set(rb.attestations)):
            da, db = ra.attestations.get(key), rb.attestations.get(key)
            if da != db:
                diffs.append(f"{ra.arch.oci_platform_string()} {key}: {da} != {db}")
    return diffs


def attestation_digests(build: BuildResult) -> dict[str, dict[str, str]]:
    """platform -> {sbom_spdx, sbom_cyclonedx: artifact manifest digest}, for reports."""
    return {r.arch.oci_platform_string(): dict(r.attestations) for r in build.arches}
