"""What an attached artifact is, said in its manifest's annotations (and artifactType)."""

from __future__ import annotations

ANN_KIND = "org.reprobase.attestation"  # sbom-spdx, sbom-cyclonedx, provenance, rebuild
ANN_PLATFORM = "org.reprobase.platform"  # linux/amd64: which architecture an SBOM is for
ANN_PREDICATE = "in-toto.io/predicate-type"
ANN_KEYID = "org.reprobase.keyid"  # who signed a DSSE envelope (a hint; the signature decides)
KIND_PROVENANCE = "provenance"
KIND_REBUILD = "rebuild"
