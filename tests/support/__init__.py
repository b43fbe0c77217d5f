"""Helpers for synthc's test suite and benchmarks (not part of the shipped package)."""
