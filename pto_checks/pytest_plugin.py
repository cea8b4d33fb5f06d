"""pytest plugin of pto-checks (entry point ``pytest11``, so it works from any directory).

The hooks live here; the work is split by job in :mod:`pto_checks.plugin`:

* :mod:`~pto_checks.plugin.options`: the command-line options;
* :mod:`~pto_checks.plugin.session`: the run's state (:class:`~pto_checks.plugin.session.PtoSession`);
* :mod:`~pto_checks.plugin.fixtures`: ``model``, ``ground_state``, ``phonon_bands``, ``npt_sweep``,
  ``nvt_sweep``, ``engine_sweeps``, ``check``, ...;
* :mod:`~pto_checks.plugin.conservation`: the conservation tier's ``energy_force_paths``,
  ``energy_stress_cells``, ``energy_surface``, ``nve_runs``;
* :mod:`~pto_checks.plugin.gate`: which checks run (equivalence only when asked, regression only
  with a baseline, baseline failures as strict xfails);
* :mod:`~pto_checks.plugin.report_hooks`: outcomes into results.json, the xdist merge, the report
  and the terminal summary.

Tests that take the ``model`` fixture are parametrized over the selected models (one test id per
model).  Markers: :mod:`pto_checks.markers` (the one list).
"""

from __future__ import annotations

import pytest

from pto_checks import models as registry
from pto_checks.plugin import session as _session
from pto_checks.plugin.accuracy import accuracy_tier  # noqa: F401  (fixture of the accuracy tier)
from pto_checks.plugin.conservation import (  # noqa: F401  (fixtures of the conservation tier)
    conservation_settings,
    energy_force_paths,
    energy_stress_cells,
    energy_surface,
    nve_runs,
)
from pto_checks.plugin.fixtures import (  # noqa: F401  (fixtures are found in this module)
    check,
    engine_sweeps,
    ground_state,
    model,
    npt_sweep,
    nvt_sweep,
    phonon_bands,
    pto_baseline,
    pto_cache,
    pto_protocol,
    pto_results,
    report_dir,
)
from pto_checks.plugin.gate import pytest_collection_modifyitems  # noqa: F401
from pto_checks.plugin.options import DEFAULT_MODEL, add_options  # noqa: F401
from pto_checks.plugin.report_hooks import (  # noqa: F401
    pytest_report_teststatus,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)
from pto_checks.plugin.session import session_state


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    from pto_checks import markers

    markers.register(config)
    from pto_checks.plugin import marker_expression

    problem = marker_expression.unknown_marker_message(config.getoption("markexpr", None),
                                                       marker_expression.registered(config))
    if problem:  # before any work: a mistyped marker would deselect everything and check nothing
        raise pytest.UsageError(problem)
    _session.configure(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    st = session_state(config)
    if st is None:
        return []
    return [f"pto-checks: models {', '.join(s.name for s in st.specs)}; protocol "
            f"{st.protocol.name}; cache {st.cache.root}; {st.threads.describe()} per process"]


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("--list-models"):
        for f in config.getoption("--model-file") or []:
            registry.load_model_file(f)
        for name in registry.available_names(include_hidden=True):
            s = registry.get_spec(name)
            print(f"{s.name:16s} {s.family:9s} {s.version:20s} {s.functional:7s} {s.weights_source}")
        return 0
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "model_name" in metafunc.fixturenames:
        st = session_state(metafunc.config)
        names = [s.name for s in st.specs]
        metafunc.parametrize("model_name", names, ids=names, scope="session")
    if "npt_integrator" in metafunc.fixturenames:
        st = session_state(metafunc.config)
        chosen = metafunc.config.getoption("--npt-integrator") or [st.protocol.md.npt_integrator]
        chosen = list(dict.fromkeys(chosen))
        metafunc.parametrize("npt_integrator", chosen, ids=chosen, scope="session")


