"""Benchmarks of schurjax: run each as ``python -m benchmarks.<name>``; see README.md."""
