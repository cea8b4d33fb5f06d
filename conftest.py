"""Root conftest: the pto-checks options and fixtures come from the installed plugin
(``pto_checks.pytest_plugin``, entry point ``pytest11``); here only test-session settings."""

import matplotlib

matplotlib.use("Agg")

pytest_plugins = ["pytester"]  # used by tests/harness
