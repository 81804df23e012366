"""Publishing a verified layout: local OCI stores and registry targets."""
