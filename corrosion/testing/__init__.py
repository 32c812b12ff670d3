"""Generated inputs for tests, benchmarks and the demo: synthetic labelled surveys, the hostile-input corpus."""
