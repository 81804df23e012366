"""Shared pytest configuration. Fixtures for real builds live in tests/build_fixtures.py."""

from tests.build_fixtures import bookworm_build, recorded_mirror

__all__ = ["bookworm_build", "recorded_mirror"]
