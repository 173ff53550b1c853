"""Benchmarks of schurjax (issue 5): run each as ``python -m benchmarks.<name>``; see README.md."""
