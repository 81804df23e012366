"""reprobase cache proxy: a snapshot-aware, content-addressed, verifying cache."""

__version__ = "0.1.0"
