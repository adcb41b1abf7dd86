"""Benchmark harness: gateway vs. direct-to-upstream on loopback (`python -m bench.run`)."""
