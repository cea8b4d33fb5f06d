"""conftest of the check files shipped in the wheel (pto_checks/checks/): markers and Agg."""

import matplotlib

matplotlib.use("Agg")


def pytest_configure(config):
    for marker in ("sanity", "static", "phonon", "dynamic", "npt", "nvt", "regression", "accuracy"):
        config.addinivalue_line("markers", marker)
