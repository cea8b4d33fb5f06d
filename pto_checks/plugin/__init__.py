"""The pytest plugin split by job; the entry point is :mod:`pto_checks.pytest_plugin`."""
