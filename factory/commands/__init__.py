"""Subcommands of the reprobase console script, one module each."""
