"""Shared pytest configuration. Fixtures for real builds live in tests/build_fixtures.py."""
