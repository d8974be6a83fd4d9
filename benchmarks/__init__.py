"""Benchmarks: `python -m benchmarks.<name>` (see /work/shared/BENCHMARKS.md conventions in docs)."""
