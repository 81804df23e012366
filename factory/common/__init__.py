"""What every stage shares: errors, canonical JSON, the subprocess runner, paths, architectures,
output safety, progress and the shipped data files. Imports nothing else of factory."""
