"""Benchmarks: fapilog against the libraries users would pick instead, as ratios."""
