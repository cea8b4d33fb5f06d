"""Fixtures of the conservation tier (registered by importing them into :mod:`pto_checks.pytest_plugin`).

Each part is one cache entry per model (stage ``conservation``, keyed by the model's identity, the
part, the :class:`~pto_checks.conservation.ConservationSettings` fields it uses and the module's code
version): the model's raw outputs (energies, forces' work, stresses, the NVE series).  What the
limits decide (steps, drift, bounds) is recomputed on read, so a changed limit never needs a rerun.
Every part's numbers go to results.json (``quantities.conservation``) with ``compute_s``, the
seconds its computation took when it was computed (kept in the entry, so a cache hit reports the
original cost).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from pto_checks import conservation as cons
from pto_checks.cache import CorruptEntry, stage_key
from pto_checks.plugin.session import state


@pytest.fixture(scope="session")
def conservation_settings() -> cons.ConservationSettings:
    """What the conservation tier computes (the same for every protocol)."""
    return cons.ConservationSettings()


def _validator(keys: tuple[str, ...]):
    def validate(folder, data: dict[str, Any]) -> None:
        for k in keys:
            if k not in data:
                raise CorruptEntry(folder / "meta.json", f"{k!r} missing")

    return validate


def _stage(request: pytest.FixtureRequest, model, settings: cons.ConservationSettings, part: str,
           compute: Callable[[], dict[str, Any]], **extra: Any) -> dict[str, Any]:
    st = state(request)
    key, inputs = stage_key("conservation", model=model.identity(), part=part, settings=settings.part(part),
                            code=cons.STAGE_VERSION, **extra)

    def run(_work) -> dict[str, Any]:
        t0 = time.perf_counter()
        data = compute()
        return dict(data, compute_s=time.perf_counter() - t0)

    _, data, hit = st.cache.get_or_compute("conservation", key, run, meta={"model": model.identity(), "part": part},
                                           validate=_validator(("compute_s",)), inputs=inputs)
    return dict(data, cache_hit=hit)


@pytest.fixture(scope="session")
def energy_force_paths(request: pytest.FixtureRequest, model, conservation_settings) -> list[cons.PathConsistency]:
    """Energy change vs the forces' work along one random smooth path per cell (cached)."""
    data = _stage(request, model, conservation_settings, "energy_force",
                  lambda: {"paths": [p.to_dict() for p in cons.energy_force_consistency(model.calculator,
                                                                                       conservation_settings)]})
    paths = [cons.PathConsistency(**p) for p in data["paths"]]
    state(request).results.quantity(model.name, "conservation", "energy_force", data["paths"],
                                    "eV (energies, work), A (displacement), relative_error dimensionless",
                                    compute_s=data["compute_s"])
    return paths


@pytest.fixture(scope="session")
def energy_stress_cells(request: pytest.FixtureRequest, model, conservation_settings) -> list[cons.StressConsistency]:
    """The model's stress vs central differences of its energy on each cell (cached)."""
    data = _stage(request, model, conservation_settings, "energy_stress",
                  lambda: {"cells": [c.to_dict() for c in cons.energy_stress_consistency(model.calculator,
                                                                                        conservation_settings)]})
    cells = [cons.StressConsistency(**c) for c in data["cells"]]
    state(request).results.quantity(model.name, "conservation", "energy_stress", data["cells"],
                                    "GPa (Voigt xx yy zz yz xz xy, positive = tensile)", compute_s=data["compute_s"])
    return cells


@pytest.fixture(scope="session")
def energy_surface(request: pytest.FixtureRequest, model, conservation_settings) -> list[cons.EnergyScan]:
    """Fine energy scans (cached energies) and their steps, named by the model's cutoffs."""
    from pto_checks.reference import tolerance

    data = _stage(request, model, conservation_settings, "energy_scans",
                  lambda: {"scans": cons.scan_energies(model.calculator, conservation_settings)})
    cutoffs = cons.model_cutoffs(model.calculator)
    scans = cons.analyse_scans(data["scans"], conservation_settings, cutoffs,
                               float(tolerance("conservation_smoothness")["min_step_meV_per_fu"]))
    state(request).results.quantity(model.name, "conservation", "energy_scans", [s.to_dict() for s in scans],
                                    "eV/f.u. (energies), meV/f.u. (residuals, steps)", cutoffs_A=cutoffs,
                                    compute_s=data["compute_s"])
    return scans


def nve_temperatures(protocol) -> list[float]:
    """300 K and the top of the protocol's temperature grid."""
    return sorted({300.0, float(max(protocol.md.temperatures_K))})


@pytest.fixture(scope="session")
def nve_runs(request: pytest.FixtureRequest, model, conservation_settings) -> list[cons.NVERun]:
    """Velocity-Verlet runs at 300 K and the top of the protocol's grid (cached series), analysed."""
    from pto_checks.reference import tolerance

    st = state(request)
    s = conservation_settings
    tol = tolerance("conservation_nve")
    runs, seconds = [], {}
    for t in nve_temperatures(st.protocol):
        data = _stage(request, model, s, "nve", lambda t=t: cons.nve_simulate(
            model.calculator, cons.nve_cell(s), t, s.nve_timestep_fs, s.nve_steps, s.seed).to_dict(),
            temperature_K=t)
        traj = cons.NVETrajectory(**{k: data[k] for k in cons.NVETrajectory.__dataclass_fields__})
        runs.append(cons.analyse_nve(traj, float(tol["max_frequency_THz"]), float(tol["fluctuation_margin"])))
        seconds[f"{t:.0f}K"] = data["compute_s"]
    st.results.quantity(model.name, "conservation", "nve", [r.to_dict(series=False) for r in runs],
                        "K, fs, meV/atom, meV/atom/ps, THz", compute_s=seconds)
    return runs
