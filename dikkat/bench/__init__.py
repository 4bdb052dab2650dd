"""Benchmarks behind `dikkat bench ...`: figures to read, never asserted in tests."""
