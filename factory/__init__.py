"""reprobase factory: reproducible Debian base images from recipes."""

__version__ = "0.1.0"
