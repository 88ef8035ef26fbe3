"""Performance benchmarks (pytest-benchmark), outside the default test run; see README.md."""
