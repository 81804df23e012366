"""The nightly: its configuration and the run (pin, double build, publish, re-verify)."""
