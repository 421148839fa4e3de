"""Benchmarks that print one JSON object as their last line; never part of the test run."""
