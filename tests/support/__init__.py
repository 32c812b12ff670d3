"""Test support shared by the tests and the benchmarks: generated TFRecord data sets and model doubles.

Tests import it as ``support`` (pytest puts ``tests/`` on the path); benchmarks as ``tests.support``.
"""
