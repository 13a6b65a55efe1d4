"""Benchmarks (``make bench``): measured, never asserted. Each prints a table and writes JSON."""
