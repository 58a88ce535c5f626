"""Benchmarks: each prints a table and compares against a reference measured in the same run."""
