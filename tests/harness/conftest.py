"""Harness tests: fast, CPU, marker ``harness`` (applied to every test in this folder)."""

import pytest

# Imported before any test: pytester restores sys.modules after each test that uses it, so a
# module first imported inside such a test is dropped and imported afresh by the next one.
# PyYAML's C extension cannot be imported afresh: it keeps the first yaml.nodes classes, the fresh
# resolver compares against the new ones, and CSafeLoader fails on every mapping ("could not
# determine a constructor for the tag None"), seen when a pytester test ran phonopy first.
import yaml  # noqa: F401

from pto_checks.cli import checks_dir

#: Modules whose every test runs the harness end to end: pytest in a subprocess or pytester, the CLI,
#: Dask, a browser, real models or MD sweeps.  Tests elsewhere are end-to-end when they use pytester
#: (directly or through a fixture) or are listed in E2E_TESTS; every other test is a unit test.
E2E_MODULES = {"test_adapters", "test_batched", "test_checks_can_fail", "test_environments", "test_executors",
               "test_inconclusive", "test_md_path", "test_package", "test_report_gate", "test_reports"}
E2E_TESTS: set[str] = set()


def pytest_configure(config):
    config.addinivalue_line("markers", "unit: harness tests of pure functions (fast; no pytester, models or MD)")
    config.addinivalue_line("markers", "e2e: harness tests end to end (pytester, CLI, MD sweeps, Dask, browser)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/harness/" not in item.nodeid.replace("\\", "/"):
            continue
        item.add_marker(pytest.mark.harness)
        module = item.path.stem
        e2e = (module in E2E_MODULES or getattr(item, "originalname", item.name) in E2E_TESTS
               or "pytester" in getattr(item, "fixturenames", ()))
        item.add_marker(pytest.mark.e2e if e2e else pytest.mark.unit)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the adapters' models are tiny and two threads only contend."""
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def check_files(pytester):
    """``check_files("test_static.py", ...)`` copies shipped check files (:mod:`pto_checks.checks`)
    into the pytester folder and returns the pytester, so a test runs the real checks, as installed,
    against the models and options it chooses."""

    def copy(*names: str) -> pytest.Pytester:
        for name in names:
            pytester.makepyfile(**{name.removesuffix(".py"): (checks_dir() / name).read_text()})
        return pytester

    return copy
