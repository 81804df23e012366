"""Image bytes and metadata: canonical layer, compressors, config/manifest/index, the OCI
layout, self-description, merging per-architecture layouts, the byte-path self-test."""
