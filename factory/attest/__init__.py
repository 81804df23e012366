"""Trust that can be checked offline: SBOMs, provenance, DSSE signatures, rebuild quorums.

Pure logic (dpkgstatus, licenses, sbom_spdx, sbom_cyclonedx, provenance, rebuild, dsse,
quorum) is kept apart from I/O (facts, keys, signer, store, fetch). Everything that gets
a digest is canonical JSON (factory.common.canonical); times are SOURCE_DATE_EPOCH.
Attestations are OCI referrers of the image index: attaching one never changes it.
"""
