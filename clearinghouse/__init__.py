"""A replayable, deterministic perpetual-futures clearinghouse (see README.md and docs/protocol.md)."""

__version__ = "0.2.0"
"""The package version (also ``clearinghouse --version``; pyproject.toml reads it from here)."""
