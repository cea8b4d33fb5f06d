"""Harness tests: fast, CPU, marker ``harness`` (applied to every test in this folder)."""

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/harness/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.harness)


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
