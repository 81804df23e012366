"""Recipes: what to build (images/*.toml), validated, and where they are found."""
