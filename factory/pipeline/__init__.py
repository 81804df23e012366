"""Builds: one build (request -> layout), the double build, reproduce, tool versions."""
