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
#: Dask, a browser, real models or MD sweeps.  Tests elsewhere are end-to-end when they use one of
#: E2E_FIXTURES (directly or through another fixture) or are listed in E2E_TESTS (MD runs, real
#: models, relaxations, other processes); every other test is a unit test: pure functions, seconds
#: in all (`OMP_NUM_THREADS=1 pytest -m "harness and unit"`).
E2E_MODULES = {"test_adapters", "test_batched", "test_checks_can_fail", "test_environments", "test_executors",
               "test_inconclusive", "test_md_path", "test_package", "test_report_gate", "test_reports"}
E2E_FIXTURES = {"pytester", "check_files", "good_model", "md_model", "tier_results"}
E2E_TESTS = {
    "test_chgnet_force_rmse_matches_an_independent_computation",
    "test_chunked_run_equals_one_long_run_bit_for_bit",
    "test_heating_model_fails_the_run_on_kinetic_temperature",
    "test_interrupted_run_resumes_to_the_same_result",
    "test_interrupted_sequential_sweep_resumes_to_the_same_rows",
    "test_module_imports_alone",
    "test_planted_mace_conversion_file_is_never_unpickled",
    "test_relaxed_observables_invariant_under_axis_permutation",
    "test_same_seed_same_trajectory",
    "test_sequential_sweep_on_ferro",
    "test_short_real_run_of_a_disordered_ferro_model_is_decided_cubic",
    "test_sigkill_during_md_then_resume",
    "test_two_processes_compute_once",
    "test_two_workers_share_a_sweep",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/harness/" not in item.nodeid.replace("\\", "/"):
            continue
        item.add_marker(pytest.mark.harness)
        module = item.path.stem
        e2e = (module in E2E_MODULES or getattr(item, "originalname", item.name) in E2E_TESTS
               or not E2E_FIXTURES.isdisjoint(getattr(item, "fixturenames", ())))
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
