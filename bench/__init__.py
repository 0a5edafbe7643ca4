"""Benchmarks of otatui (not part of make test): python -m bench."""
