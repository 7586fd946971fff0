"""Benchmarks: ``python -m bench.append [--quick]`` measures the write path against its peers."""
