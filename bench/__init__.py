"""Benchmarks: `python -m bench.throughput` (see its --help)."""
