"""The root filesystem: mmdebstrap, build environments A and B, normalisation, package lists."""
