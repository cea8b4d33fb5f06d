"""The plugin's fixtures: the model, the stages' results (ground state, phonons, MD sweeps) and
``check`` (records a verdict).  Each stage fixture calls its stage and records its quantities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pto_checks import models as registry
from pto_checks.cache import Cache
from pto_checks.plugin.session import state, xdist_worker
from pto_checks.results import Results
from pto_checks.safe_files import copy_file, safe_name
from pto_checks.verdicts import Verdict

VERDICT_KEY = pytest.StashKey[Verdict]()


@pytest.fixture(scope="session")
def pto_protocol(request: pytest.FixtureRequest):
    """The :class:`~pto_checks.protocols.Protocol` chosen with ``--protocol``."""
    return state(request).protocol


@pytest.fixture(scope="session")
def pto_cache(request: pytest.FixtureRequest) -> Cache:
    """The on-disk cache of expensive results."""
    return state(request).cache


@pytest.fixture(scope="session")
def pto_results(request: pytest.FixtureRequest) -> Results:
    """The results being collected for ``results.json``."""
    return state(request).results


@pytest.fixture(scope="session")
def model(request: pytest.FixtureRequest, model_name: str) -> registry.LoadedModel:
    """The loaded model (ASE calculator + spec + weights fingerprint), once per session."""
    st = state(request)
    if model_name in st.loaded:
        return st.loaded[model_name]
    spec = next(s for s in st.specs if s.name == model_name)
    error = None
    try:
        loaded = registry.load_model(spec, request.config.getoption("--device"))
    except registry.ModelUnavailable as exc:
        error = str(exc)
    if error is not None:  # outside the except block: one message, no chained traceback
        st.load_errors[model_name] = error
        if model_name in st.explicit:
            pytest.fail(error, pytrace=False)
        pytest.skip(f"{error} (skipped under --model all)")
    st.loaded[model_name] = loaded
    st.results.set_spec(model_name, loaded.to_dict())
    return loaded


class Inconclusive(pytest.skip.Exception):
    """Raised by ``check`` for an inconclusive verdict: pytest reports the test as skipped with
    this message; the plugin reports it as its own outcome, ``inconclusive`` (terminal letter
    ``I``, JUnit property ``pto_status=inconclusive``, results.json ``status: "inconclusive"``),
    never as a pass, and ``--inconclusive`` decides whether it fails the run."""


@pytest.fixture
def check(request: pytest.FixtureRequest):
    """``check(verdict)``: record a :class:`Verdict` for results.json; fail the test if it failed,
    end it as *inconclusive* (:class:`Inconclusive`) if it could not be decided."""

    def _check(verdict: Verdict) -> Verdict:
        verdict.details.setdefault("protocol", state(request).protocol.name)
        request.node.stash[VERDICT_KEY] = verdict
        if verdict.inconclusive:
            raise Inconclusive(f"INCONCLUSIVE [{verdict.check}] {verdict.message}")
        if not verdict.passed:
            pytest.fail(f"[{verdict.check}] {verdict.message}", pytrace=False)
        return verdict

    return _check


@pytest.fixture(scope="session")
def pto_baseline(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The accepted results of ``--baseline FILE`` (skips the test when no baseline is given)."""
    baseline = state(request).baseline
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

    st = state(request)
    folder, data = stages.ground_state(model, st.protocol, st.cache)
    res: Results = st.results
    units = {"a": "Angstrom", "c": "Angstrom", "c_over_a": "1", "cubic_a": "Angstrom",
             "delta_e": "eV/f.u.", "energy_tetragonal_per_fu": "eV/f.u.",
             "energy_cubic_per_fu": "eV/f.u."}
    for k, unit in units.items():
        res.quantity(model.name, "ground_state", k, data[k], unit)
    res.quantity(model.name, "ground_state", "relaxations",
                 {"tetragonal": data["relax_tetragonal"], "cubic": data["relax_cubic"],
                  "tetragonal_free": data.get("relax_tetragonal_free")}, "")
    sym = data["symmetry"]
    res.quantity(model.name, "ground_state", "symmetry", sym, "eV/f.u. (energy_gain_per_fu), Angstrom (symprec)")
    report = request.config.getoption("--report")
    if report:
        out = Path(report) / "structures" / safe_name(model.name)
        for f in ("tetragonal.extxyz", "cubic.extxyz", "tetragonal_free.extxyz"):
            if (folder / f).is_file():
                copy_file(folder / f, out / f"relaxed_{f}")
    return dict(data, folder=folder)


@pytest.fixture(scope="session")
def phonon_bands(request: pytest.FixtureRequest, model: registry.LoadedModel,
                 ground_state: dict[str, Any]) -> dict[str, Any]:
    """Phonons of the relaxed P4mm cell (cached per supercell), judged with supercell escalation
    (:func:`pto_checks.stages.phonon_stage`); band.yaml, phonopy_params.yaml and the plot in the report."""

    from pto_checks import phonons, stages

    st = state(request)
    quiet = xdist_worker(request.config) is not None or request.config.getoption("verbose") < 0
    write = None if quiet else _terminal_writer(request.config)
    folder, data, res, first = stages.phonon_stage(model, st.protocol, st.cache,
                                                   ground_state["folder"] / "tetragonal.extxyz", write=write)
    results: Results = st.results
    dec = data["decision"]
    results.quantity(model.name, "phonons", "f_min", data["f_min_thz"], "THz", q=data["q_min"],
                     supercell=data["supercell"])
    results.quantity(model.name, "phonons", "decision", dec, "THz")
    report = request.config.getoption("--report")
    if report:
        out = Path(report) / "phonons" / safe_name(model.name)
        copy_file(folder / "band.yaml", out / "band.yaml")
        copy_file(folder / "phonopy_params.yaml", out / "phonopy_params.yaml")
        # the stage's decision (its outcome and the mode that decided), not the check's verdict: the
        # check computes that; the full reasoning is in results.json
        m = dec["mode"]
        caption = (f"{dec.get('outcome', 'pass' if dec['stable'] else 'fail').upper()}: lowest frequency "
                   f"{m['f_thz']:.3f} THz at q = ({', '.join(f'{x:.3f}' for x in m['q'])}), decided by the "
                   f"{'x'.join(map(str, dec['decided_by']))} supercell")
        for suffix in ("png", "svg"):
            phonons.plot_bands(res, out / f"bands.{suffix}",
                               title=f"{model.name}: PbTiO3 P4mm (symprec {data['symprec']} Å)",
                               caption=caption, first=first if first is not res else None)
        results.quantity(model.name, "phonons", "files", {"band_yaml": str(out / "band.yaml"),
                                                          "phonopy_params": str(out / "phonopy_params.yaml"),
                                                          "plot": str(out / "bands.png"),
                                                          "plot_svg": str(out / "bands.svg")}, "")
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


def _sweep(request: pytest.FixtureRequest, model: registry.LoadedModel, ensemble: str, integrator: str):
    from pto_checks import stages

    st = state(request)
    quiet = xdist_worker(request.config) is not None or request.config.getoption("verbose") < 0
    rows = stages.md_sweep(model, st.protocol, st.cache, ensemble, integrator,
                           engine=request.config.getoption("--engine"), progress=not quiet,
                           write=_terminal_writer(request.config),
                           together=_sweeps_requested(request.session, model.name),
                           executor=st.md_executor(model.device, _terminal_writer(request.config)))
    from pto_checks.md.sweep import Sweep

    sweep = Sweep(ensemble, integrator, rows, st.protocol,
                  engine="+".join(sorted({r.get("engine", "ase") for r in rows})))
    results: Results = st.results
    data = sweep.to_dict()
    out = request.config.getoption("--report")
    if out:  # each temperature's trajectory and time series, linked from results.json (the report draws the figures)
        from pto_checks.report import export_md_files

        exported = export_md_files(sweep.rows, out, model.name, f"{ensemble}_{integrator}")
        for row, files in zip(data["rows"], exported, strict=True):
            row["files"] = files
    results.quantity(model.name, "md", f"{ensemble}_{integrator}",
                     {k: data[k] for k in ("rows", "tc", "engine")}, "T in K; a, c in Angstrom; P in C/m^2")
    return sweep


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
def npt_sweep(request: pytest.FixtureRequest, model: registry.LoadedModel, npt_integrator: str):
    """The NPT heating sweep of ``model`` (cached per temperature): a :class:`pto_checks.md.sweep.Sweep`
    (rows, Tc, table, protocol, engine)."""
    return _sweep(request, model, "npt", npt_integrator)


@pytest.fixture(scope="session")
def nvt_sweep(request: pytest.FixtureRequest, model: registry.LoadedModel):
    """The NVT (Langevin, experimental lattice) heating sweep of ``model`` (cached per temperature):
    a :class:`pto_checks.md.sweep.Sweep`."""
    return _sweep(request, model, "nvt", "langevin")


@pytest.fixture(scope="session")
def engine_sweeps(request: pytest.FixtureRequest, model: registry.LoadedModel):
    """``engine_sweeps(ensemble, integrator)`` -> (ASE-engine rows, batched-engine rows) of one sweep
    of ``model`` (both cached; the batched engine runs NPT and NVT together)."""
    from pto_checks import stages

    st = state(request)
    quiet = xdist_worker(request.config) is not None or request.config.getoption("verbose") < 0
    both = [("npt", "melchionna"), ("nvt", "langevin")]

    def get(ensemble: str, integrator: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ex = st.md_executor(model.device, _terminal_writer(request.config))
        ref, new = (stages.md_sweep(model, st.protocol, st.cache, ensemble, integrator, engine=e,
                                    progress=not quiet, write=_terminal_writer(request.config), together=both,
                                    executor=ex)
                    for e in ("ase", "batched"))
        return ref, new

    return get
