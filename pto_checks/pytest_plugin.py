"""pytest plugin: ``--model``, ``--protocol``, ``--device``, ``--report``; model fixtures; results.

Registered through the ``pytest11`` entry point, so it works from any directory.  Tests that
take the ``model`` fixture are parametrized over the selected models (one test id per model).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from pto_checks import models as registry
from pto_checks import validate
from pto_checks.cache import Cache
from pto_checks.protocols import apply_overrides, get_protocol
from pto_checks.results import Results, annotate_integrator_flips, merge
from pto_checks.verdicts import Verdict

DEFAULT_MODEL = "chgnet"
_VERDICT_KEY = pytest.StashKey[Verdict]()
_STATE_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pto-checks", "PbTiO3 model validation")
    group.addoption("--model", action="append", default=[], metavar="NAME",
                    help="model(s) to check: registered names, comma lists, 'all' (every model "
                         "that loads here; others skipped), or FAMILY:PATH forms. Default: chgnet")
    group.addoption("--model-file", action="append", default=[], metavar="TOML",
                    help="register models from a TOML file ([models.NAME] tables)")
    group.addoption("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="device for the models (default: auto = cuda if available)")
    group.addoption("--protocol", default="paper", help="protocol: paper, quick or smoke (default paper)")
    group.addoption("--report", default=None, metavar="DIR",
                    help="write DIR/results.json (and per-model files such as phonon bands)")
    group.addoption("--pto-cache", default=None, metavar="DIR",
                    help="cache of expensive results (default: pytest's cache dir, so --cache-dir "
                         "moves it and --cache-clear empties it)")
    group.addoption("--recompute", "--rerun-md", action="store_true", dest="recompute",
                    help="ignore cached relaxations/phonons/MD and compute again")
    group.addoption("--protocol-set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="override a protocol field, e.g. md.steps=2000, md.temperatures_K=300,700,1000, "
                         "md.supercell=3, md.timestep_fs=1, md.seed=7 (recorded in the results)")
    group.addoption("--npt-integrator", action="append", default=[], choices=["melchionna", "mtk"],
                    help="NPT integrator(s): melchionna (ASE NPT, the study's; default) and/or mtk "
                         "(ASE MaskedMTKNPT); give twice to compare")
    group.addoption("--engine", default="auto", choices=["auto", "ase", "batched"],
                    help="MD engine: ase (reference, one temperature at a time), batched (all temperatures "
                         "and both ensembles of a sweep in one model call per step, on the model's device), "
                         "auto (default: batched on a GPU for models with a device-side interface "
                         "(CHGNet, SevenNet, MACE, DeePMD, M3GNet), else ase)")
    group.addoption("--bench-sizes", default="1,2,3,4,5,6,7,8,9,10", metavar="N,N,...",
                    help="benchmark: supercell sizes n (n x n x n, 5 n^3 atoms)")
    group.addoption("--bench-replicas", type=int, default=8, metavar="N",
                    help="benchmark: replicas advanced together in the batched-engine benchmark (default 8)")
    group.addoption("--bench-budget", type=float, default=300.0, metavar="SECONDS",
                    help="benchmark: time budget per model; larger sizes are skipped past it")
    group.addoption("--list-models", action="store_true", help="list registered models and exit")
    group.addoption("--compare", default=None, metavar="OLD.json",
                    help="with --report: mark verdicts that changed and quantities that moved since OLD.json")
    group.addoption("--baseline", default=None, metavar="FILE",
                    help="CI gate: accepted results; checks that failed there are strict xfails, and "
                         "quantities must not move beyond the regression thresholds")
    group.addoption("--update-baseline", action="store_true",
                    help="write this run's results to --baseline FILE (accept them)")


def pytest_configure(config: pytest.Config) -> None:
    for marker in ("sanity", "static", "phonon", "dynamic", "npt", "nvt", "harness", "slow", "regression",
                   "benchmark"):
        config.addinivalue_line("markers", f"{marker}: pto-checks {marker} checks")
    for f in config.getoption("--model-file") or []:
        try:
            registry.load_model_file(f)
        except (OSError, KeyError, ValueError) as exc:
            raise pytest.UsageError(f"--model-file {f}: {type(exc).__name__}: {exc}") from None
    try:
        protocol = get_protocol(config.getoption("--protocol"))
        protocol = apply_overrides(protocol, config.getoption("--protocol-set") or [])
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    requested = config.getoption("--model") or [DEFAULT_MODEL]
    try:
        specs = registry.specs_for(requested)
    except registry.ModelUnavailable as exc:
        raise pytest.UsageError(str(exc)) from None
    try:  # paths, device and model files: refused now, before any work (exit status 4)
        validate.check_startup(config.getoption, specs)
    except validate.OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    explicit = {s.name for s in specs} - (
        set(registry.available_names()) if any("all" in r.split(",") for r in requested) else set()
    )
    parts = _parts_dir(config)
    if parts is not None and os.environ.get("PYTEST_XDIST_WORKER") is None:
        shutil.rmtree(parts, ignore_errors=True)  # stale parts of an earlier run
    cache_root = config.getoption("--pto-cache")
    if cache_root is None:
        cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
        cache_root = str(cache.mkdir("pto-checks")) if cache is not None else ".pto_cache"
    baseline = None
    bpath = config.getoption("--baseline")
    if config.getoption("--update-baseline") and not (bpath and config.getoption("--report")):
        raise pytest.UsageError("--update-baseline needs --baseline FILE (where to write it) and "
                                "--report DIR (whose results.json becomes the baseline)")
    if bpath and not config.getoption("--update-baseline"):
        if not Path(bpath).is_file():
            raise pytest.UsageError(f"--baseline {bpath}: no such file. Create it with "
                                    f"--baseline {bpath} --update-baseline")
        from pto_checks.results import load

        baseline = load(bpath)
    config.stash[_STATE_KEY] = {
        "baseline": baseline,
        "outcomes": [],
        "specs": specs,
        "explicit": explicit,
        "protocol": protocol,
        "cache": Cache(cache_root, enabled=not config.getoption("--recompute")),
        "results": Results(protocol.to_dict()),
        "loaded": {},
        "load_errors": {},
    }


def pytest_report_header(config: pytest.Config) -> list[str]:
    st = config.stash.get(_STATE_KEY, None)
    if st is None:
        return []
    return [f"pto-checks: models {', '.join(s.name for s in st['specs'])}; protocol "
            f"{st['protocol'].name}; cache {st['cache'].root}"]


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
        st = metafunc.config.stash[_STATE_KEY]
        names = [s.name for s in st["specs"]]
        metafunc.parametrize("model_name", names, ids=names, scope="session")
    if "npt_integrator" in metafunc.fixturenames:
        st = metafunc.config.stash[_STATE_KEY]
        chosen = metafunc.config.getoption("--npt-integrator") or [st["protocol"].md.npt_integrator]
        chosen = list(dict.fromkeys(chosen))
        metafunc.parametrize("npt_integrator", chosen, ids=chosen, scope="session")


def _state(request: pytest.FixtureRequest) -> dict[str, Any]:
    return request.config.stash[_STATE_KEY]


@pytest.fixture(scope="session")
def pto_protocol(request: pytest.FixtureRequest):
    """The :class:`~pto_checks.protocols.Protocol` chosen with ``--protocol``."""
    return _state(request)["protocol"]


@pytest.fixture(scope="session")
def pto_cache(request: pytest.FixtureRequest) -> Cache:
    """The on-disk cache of expensive results."""
    return _state(request)["cache"]


@pytest.fixture(scope="session")
def pto_results(request: pytest.FixtureRequest) -> Results:
    """The results being collected for ``results.json``."""
    return _state(request)["results"]


@pytest.fixture(scope="session")
def model(request: pytest.FixtureRequest, model_name: str) -> registry.LoadedModel:
    """The loaded model (ASE calculator + spec + weights fingerprint), once per session."""
    st = _state(request)
    if model_name in st["loaded"]:
        return st["loaded"][model_name]
    spec = next(s for s in st["specs"] if s.name == model_name)
    error = None
    try:
        loaded = registry.load_model(spec, request.config.getoption("--device"))
    except registry.ModelUnavailable as exc:
        error = str(exc)
    if error is not None:  # outside the except block: one message, no chained traceback
        st["load_errors"][model_name] = error
        if model_name in st["explicit"]:
            pytest.fail(error, pytrace=False)
        pytest.skip(f"{error} (skipped under --model all)")
    st["loaded"][model_name] = loaded
    st["results"].set_spec(model_name, loaded.to_dict())
    return loaded


@pytest.fixture
def check(request: pytest.FixtureRequest):
    """``check(verdict)``: record a :class:`Verdict` for results.json and fail the test if it failed."""

    def _check(verdict: Verdict) -> Verdict:
        request.node.stash[_VERDICT_KEY] = verdict
        if not verdict.passed:
            pytest.fail(f"[{verdict.check}] {verdict.message}", pytrace=False)
        return verdict

    return _check


@pytest.fixture(scope="session")
def pto_baseline(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The accepted results of ``--baseline FILE`` (skips the test when no baseline is given)."""
    baseline = _state(request).get("baseline")
    if baseline is None:
        pytest.skip("no --baseline FILE given (regression checks compare with accepted results)")
    return baseline


@pytest.fixture
def report_dir(request: pytest.FixtureRequest) -> Path | None:
    """``--report DIR`` as a Path (or None)."""
    d = request.config.getoption("--report")
    return Path(d) if d else None


@pytest.fixture(scope="session")
def ground_state(request: pytest.FixtureRequest, model: registry.LoadedModel) -> dict[str, Any]:
    """Relaxed tetragonal and cubic PbTiO3 of ``model`` and their observables (cached on disk).

    Keys: ``a``, ``c``, ``c_over_a``, ``delta_e`` (eV/f.u.), ``folder`` (extxyz files), ...
    """
    from pto_checks import stages

    st = _state(request)
    folder, data = stages.ground_state(model, st["protocol"], st["cache"])
    res: Results = st["results"]
    units = {"a": "Angstrom", "c": "Angstrom", "c_over_a": "1", "cubic_a": "Angstrom",
             "delta_e": "eV/f.u.", "energy_tetragonal_per_fu": "eV/f.u.",
             "energy_cubic_per_fu": "eV/f.u."}
    for k, unit in units.items():
        res.quantity(model.name, "ground_state", k, data[k], unit)
    res.quantity(model.name, "ground_state", "relaxations",
                 {"tetragonal": data["relax_tetragonal"], "cubic": data["relax_cubic"]}, "")
    report = request.config.getoption("--report")
    if report:
        out = Path(report) / "structures" / model.name
        out.mkdir(parents=True, exist_ok=True)
        for f in ("tetragonal.extxyz", "cubic.extxyz"):
            shutil.copy(folder / f, out / f"relaxed_{f}")
    return dict(data, folder=folder)


@pytest.fixture(scope="session")
def phonon_bands(request: pytest.FixtureRequest, model: registry.LoadedModel,
                 ground_state: dict[str, Any]) -> dict[str, Any]:
    """Phonons of the relaxed tetragonal cell (cached): minimum mode, band.yaml, plot in the report."""
    from pto_checks import phonons, stages

    st = _state(request)
    folder, data, res = stages.phonon_stage(model, st["protocol"], st["cache"],
                                            ground_state["folder"] / "tetragonal.extxyz")
    results: Results = st["results"]
    results.quantity(model.name, "phonons", "f_min", data["f_min_thz"], "THz", q=data["q_min"])
    results.quantity(model.name, "phonons", "f_min_all", data["f_min_all_thz"], "THz",
                     q=data["q_min_all"])
    report = request.config.getoption("--report")
    if report:
        out = Path(report) / "phonons" / model.name
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / "band.yaml", out / "band.yaml")
        phonons.plot_bands(res, out / "bands.png", title=f"{model.name}: PbTiO3 P4mm")
        results.quantity(model.name, "phonons", "files", {"band_yaml": str(out / "band.yaml"),
                                                          "plot": str(out / "bands.png")}, "")
    return dict(data, result=res, folder=folder)


def _terminal_writer(config: pytest.Config):
    """A function that prints a line on the terminal past pytest's output capture."""
    capman = config.pluginmanager.getplugin("capturemanager")
    tr = config.pluginmanager.getplugin("terminalreporter")

    def write(line: str) -> None:
        if capman is not None and tr is not None:
            with capman.global_and_fixture_disabled():
                tr.write_line(line)
        else:
            print(line, flush=True)

    return write


def _sweep(request: pytest.FixtureRequest, model: registry.LoadedModel, ensemble: str,
           integrator: str) -> dict[str, Any]:
    from pto_checks import analysis, report, stages

    st = _state(request)
    quiet = os.environ.get("PYTEST_XDIST_WORKER") is not None or request.config.getoption("verbose") < 0
    from pto_checks.md import BATCHED_INTEGRATORS

    option = request.config.getoption("--engine")
    engine = resolve_engine(option, model)
    if engine == "batched" and integrator not in BATCHED_INTEGRATORS[ensemble]:
        if option == "batched":
            pytest.fail(f"--engine batched runs NPT with the melchionna integrator only; {integrator} needs "
                        f"--engine ase (or drop --npt-integrator {integrator})", pytrace=False)
        engine = "ase"  # auto: the batched engine ports ASE's NPT (melchionna) and Langevin only
    rows = stages.md_sweep(model, st["protocol"], st["cache"], ensemble, integrator,
                           engine=engine, progress=not quiet, write=_terminal_writer(request.config),
                           together=_sweeps_requested(request.session, model.name))
    phases = [r["phase"] for r in rows]
    temps = [r["T_K"] for r in rows]
    tc = analysis.transition_temperature(temps, phases)
    results: Results = st["results"]
    clean = [{k: v for k, v in r.items() if k not in ("folder", "task")} for r in rows]
    results.quantity(model.name, "md", f"{ensemble}_{integrator}",
                     {"rows": clean, "tc": tc, "engine": engine},
                     "T in K; a, c in Angstrom; P in C/m^2")
    out = request.config.getoption("--report")
    if out:
        folder = Path(out) / "md" / model.name
        folder.mkdir(parents=True, exist_ok=True)
        report.plot_sweep(clean, ensemble, folder / f"{ensemble}_{integrator}.png",
                          title=f"{model.name}: {ensemble.upper()} ({integrator}), protocol {st['protocol'].name}")
    return {"rows": rows, "tc": tc, "ensemble": ensemble, "integrator": integrator,
            "protocol": st["protocol"], "table": analysis.format_table(rows)}


def resolve_engine(option: str, model: registry.LoadedModel) -> str:
    """``auto`` -> ``batched`` on a GPU for a model with a device-side batched interface, else ``ase``."""
    if option != "auto":
        return option
    from pto_checks.models.batched import native_family

    on_gpu = str(model.device).startswith("cuda")
    return "batched" if on_gpu and native_family(model) is not None else "ase"


def _sweeps_requested(session: pytest.Session, model_name: str) -> list[tuple[str, str]]:
    """The (ensemble, integrator) sweeps that the collected tests of ``model_name`` will ask for
    (so that a batched engine runs them in one batch)."""
    out: set[tuple[str, str]] = set()
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("model_name") != model_name:
            continue
        names = getattr(item, "fixturenames", ())
        if "npt_sweep" in names:
            out.add(("npt", params.get("npt_integrator", "melchionna")))
        if "nvt_sweep" in names:
            out.add(("nvt", "langevin"))
    return sorted(out)


@pytest.fixture(scope="session")
def npt_sweep(request: pytest.FixtureRequest, model: registry.LoadedModel, npt_integrator: str) -> dict[str, Any]:
    """The NPT heating sweep of ``model`` (cached per temperature): rows, Tc, table."""
    return _sweep(request, model, "npt", npt_integrator)


@pytest.fixture(scope="session")
def nvt_sweep(request: pytest.FixtureRequest, model: registry.LoadedModel) -> dict[str, Any]:
    """The NVT (Langevin, experimental lattice) heating sweep of ``model`` (cached per temperature)."""
    return _sweep(request, model, "nvt", "langevin")


@pytest.fixture(scope="session")
def engine_sweeps(request: pytest.FixtureRequest, model: registry.LoadedModel):
    """``engine_sweeps(ensemble, integrator)`` -> (ASE-engine rows, batched-engine rows) of one sweep
    of ``model`` (both cached; the batched engine runs NPT and NVT together)."""
    from pto_checks import stages

    st = _state(request)
    quiet = os.environ.get("PYTEST_XDIST_WORKER") is not None or request.config.getoption("verbose") < 0
    both = [("npt", "melchionna"), ("nvt", "langevin")]

    def get(ensemble: str, integrator: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ref, new = (stages.md_sweep(model, st["protocol"], st["cache"], ensemble, integrator, engine=e,
                                    progress=not quiet, write=_terminal_writer(request.config), together=both)
                    for e in ("ase", "batched"))
        return ref, new

    return get


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    rep = outcome.get_result()
    params = getattr(getattr(item, "callspec", None), "params", {})
    name = params.get("model_name")
    st = item.config.stash.get(_STATE_KEY, None)
    if name is None or st is None:
        return
    verdict = item.stash.get(_VERDICT_KEY, None)
    if rep.when == "call" or rep.outcome != "passed":
        gate = None
        if hasattr(rep, "wasxfail"):
            gate = "expected failure (baseline)" if rep.skipped else "UNEXPECTED PASS (baseline)"
        elif rep.failed and "XPASS(strict)" in str(rep.longrepr):
            gate = "UNEXPECTED PASS (baseline): accept the improvement with --update-baseline"
        if gate and verdict is not None:
            status, msg = ("pass" if verdict.passed else "fail"), verdict.message
        elif rep.skipped:
            status = "skip"
            msg = str(rep.longrepr[2]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        elif rep.passed:
            status, msg = "pass", verdict.message if verdict else ""
        elif verdict is not None and not verdict.passed and rep.when == "call":
            status, msg = "fail", verdict.message
        else:
            status = "error"
            msg = call.excinfo.exconly()[-2000:] if call.excinfo else str(rep.longrepr)[-2000:]
        markers = sorted({m.name for m in item.iter_markers()} - {"parametrize", "usefixtures", "xfail"})
        test_id = _test_id(item)
        st["results"].check(name, test_id, status, message=msg,
                            verdict=verdict.to_dict() if verdict else None, markers=markers)
        if gate:
            st["results"].model_entry(name)["checks"][test_id]["gate"] = gate
        # on the item, so the teardown report carries it (junitxml writes properties from there)
        item.user_properties.append(("pto_status", status))


def _test_id(item: pytest.Item) -> str:
    """Stable id of a check in results.json: ``file.py::test_name`` (+ ``[mtk]`` for MTK NPT)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    tid = f"{Path(str(item.path)).name}::{getattr(item, 'originalname', item.name)}"
    integrator = params.get("npt_integrator")
    if integrator and integrator != "melchionna":
        tid += f"[{integrator}]"
    return tid


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    st = config.stash.get(_STATE_KEY, None)
    baseline = st and st.get("baseline")
    if not baseline:  # regression checks only mean something against a baseline
        keep = [i for i in items if i.get_closest_marker("regression") is None]
        if len(keep) != len(items):
            config.hook.pytest_deselected(items=[i for i in items if i not in keep])
            items[:] = keep
        return
    for item in items:
        name = getattr(getattr(item, "callspec", None), "params", {}).get("model_name")
        chk = baseline.get("models", {}).get(name, {}).get("checks", {}).get(_test_id(item)) if name else None
        if chk and chk["status"] == "fail":
            item.add_marker(pytest.mark.xfail(
                strict=True,
                reason=f"failed in the baseline ({chk.get('message', '').splitlines()[0][:200]}); an "
                       "unexpected pass means the model improved: accept it with --update-baseline"))


def _parts_dir(config: pytest.Config) -> Path | None:
    d = config.getoption("--report")
    return Path(d) / ".parts" if d else None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect check outcomes (also from xdist workers) for the all-skipped rule."""
    if report.when != "teardown":
        return
    for key, value in report.user_properties:
        if key == "pto_status":
            _OUTCOMES.append(value)


_OUTCOMES: list[str] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    st = config.stash.get(_STATE_KEY, None)
    if st is None:
        return
    is_controller = os.environ.get("PYTEST_XDIST_WORKER") is None
    if is_controller and _OUTCOMES and all(o == "skip" for o in _OUTCOMES) and exitstatus == 0:
        # a gate must not pass by skipping
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        st["all_skipped"] = True
    if is_controller and config.getoption("--update-baseline"):
        st["update_baseline"] = True
    parts = _parts_dir(config)
    if parts is None:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    parts.mkdir(parents=True, exist_ok=True)
    st["results"].write(parts / f"{worker or 'main'}.json")
    if worker is None:  # the controlling process (or a run without xdist) merges
        data = annotate_integrator_flips(merge([json.loads(p.read_text()) for p in sorted(parts.glob("*.json"))]))
        config.stash[_STATE_KEY]["merged"] = data
        data["harness"]["exit_status"] = int(session.exitstatus)
        from pto_checks.cache import write_json_atomic

        write_json_atomic(parts.parent / "results.json", data)
        shutil.rmtree(parts, ignore_errors=True)
        from pto_checks import report
        from pto_checks.results import load

        previous = config.getoption("--compare")
        report.build_report(data, parts.parent, load(previous) if previous else None)
        if st.get("update_baseline"):
            write_json_atomic(config.getoption("--baseline"), data)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    st = config.stash.get(_STATE_KEY, None)
    if st is None:
        return
    if st["load_errors"]:
        terminalreporter.section("pto-checks: models that could not load")
        for name, err in st["load_errors"].items():
            terminalreporter.write_line(f"{name}: {err}")
    if st.get("all_skipped"):
        terminalreporter.section("pto-checks: every check was skipped")
        terminalreporter.write_line("no check ran, so nothing was verified: exit status 1 "
                                    "(see the skip reasons above)")
    if st.get("update_baseline"):
        terminalreporter.write_line(f"pto-checks: baseline written to {config.getoption('--baseline')}")
    flips = {m: e["integrator_artefacts"] for m, e in st.get("merged", {}).get("models", {}).items()
             if e.get("integrator_artefacts")}
    if flips:
        terminalreporter.section("pto-checks: verdicts that flip between NPT integrators (artefacts)")
        for m, fl in flips.items():
            for f in fl:
                terminalreporter.write_line(f"{m}: {f['check']}: melchionna {f['melchionna']}, mtk {f['mtk']}")
    d = config.getoption("--report")
    if d and os.environ.get("PYTEST_XDIST_WORKER") is None:
        terminalreporter.write_line(f"pto-checks: results written to {Path(d) / 'results.json'}")
