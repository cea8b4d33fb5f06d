"""Speed benchmarks (marker ``benchmark``, pytest-benchmark): MD steps per second vs system size.

    pytest -m benchmark --model chgnet --bench-sizes 1,2,3 --benchmark-autosave
    pytest -m benchmark --model chgnet --bench-sizes 1,2,3 --benchmark-compare --benchmark-compare-fail=mean:25%
    pytest -m benchmark --model chgnet --device cuda --bench-sizes 5 -k "md_speed"   # ASE vs batched

Sizes are n x n x n PbTiO3 supercells (5 n^3 atoms; the study went to n = 10); a size whose
estimated cost exceeds what is left of ``--bench-budget`` seconds per model is skipped.  Results
also land in results.json (``quantities.benchmark``) and the report's speed figure.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from ase import units

from pto_checks import structures
from pto_checks.md import ASEEngine, MDTask
from pto_checks.protocols import PROTOCOLS

pytestmark = pytest.mark.benchmark

MAX_N = 10
_spent: dict[str, float] = {}
_last: dict[str, tuple[int, float]] = {}
_ase_s_per_step: dict[tuple[str, int], float] = {}


def _task(n: int, steps: int, temperature: float = 300.0) -> MDTask:
    p = PROTOCOLS["paper"].md
    return MDTask("nvt", "langevin", temperature, n, p.nvt_a, p.nvt_c, steps, p.timestep_fs, p.seed,
                  p.ttime_fs, p.pfactor_ase, p.mtk_tdamp_fs, p.mtk_pdamp_fs, p.friction_per_fs,
                  sample_every=p.sample_every, trajectory_every=p.trajectory_every, checkpoint_every=10**9)


def _record(results, model, row):
    entry = results.model_entry(model)["quantities"].setdefault("benchmark", {})
    md = entry.setdefault("md_speed", {"value": [], "unit": "steps/s, atom-steps/s, s/step"})
    same = (row["n"], row.get("engine", "ase"))
    md["value"] = [r for r in md["value"] if (r["n"], r.get("engine", "ase")) != same] + [row]


@pytest.mark.parametrize("n", range(1, MAX_N + 1))
def test_md_speed(benchmark, model, n, request, pto_results, tmp_path):
    """ASE-engine NVT MD steps per second for an n x n x n supercell (5 n^3 atoms)."""
    sizes = [int(x) for x in request.config.getoption("--bench-sizes").split(",")]
    if n not in sizes:
        pytest.skip(f"n = {n} not in --bench-sizes")
    budget = request.config.getoption("--bench-budget")
    atoms = 5 * n**3
    if model.name in _last:  # cost estimate from the previous size, linear in atoms
        n_prev, s_prev = _last[model.name]
        estimate = s_prev * atoms / (5 * n_prev**3) * 12
        if _spent.get(model.name, 0) + estimate > budget:
            pytest.skip(f"estimated {estimate:.0f} s exceeds what is left of --bench-budget {budget} s")
    steps = 10
    engine = ASEEngine()
    counter = iter(range(10**6))

    def run():
        engine.run(_task(n, steps), model.calculator, tmp_path / f"w{next(counter)}")

    t0 = time.perf_counter()
    benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    _spent[model.name] = _spent.get(model.name, 0) + time.perf_counter() - t0
    s_per_step = benchmark.stats.stats.mean / steps
    _last[model.name] = (n, s_per_step)
    _ase_s_per_step[(model.name, n)] = s_per_step
    row = {"n": n, "n_atoms": atoms, "steps_per_s": 1 / s_per_step, "atom_steps_per_s": atoms / s_per_step,
           "seconds_per_step": s_per_step, "device": model.device, "engine": "ase"}
    benchmark.extra_info.update(row)
    _record(pto_results, model.name, row)


@pytest.mark.parametrize("n", range(1, MAX_N + 1))
def test_batched_md_speed(benchmark, model, n, request, pto_results, tmp_path):
    """Batched-engine speed: ``--bench-replicas`` replicas (temperatures 300 K upwards, NVT) of an
    n x n x n supercell advanced together; replica-steps per second, next to the ASE engine's
    steps per second at the same n when ``test_md_speed`` measured it in this session."""
    from pto_checks.md.batched_engine import BatchedEngine

    sizes = [int(x) for x in request.config.getoption("--bench-sizes").split(",")]
    if n not in sizes:
        pytest.skip(f"n = {n} not in --bench-sizes")
    replicas = request.config.getoption("--bench-replicas")
    budget = request.config.getoption("--bench-budget")
    atoms = 5 * n**3
    key = f"{model.name}/batched"
    if key in _last:
        n_prev, s_prev = _last[key]
        estimate = s_prev * atoms / (5 * n_prev**3) * 4
        if _spent.get(key, 0) + estimate > budget:
            pytest.skip(f"estimated {estimate:.0f} s exceeds what is left of --bench-budget {budget} s")
    steps = 5
    tasks = [_task(n, steps, temperature=300.0 + 100.0 * k) for k in range(replicas)]
    engine = BatchedEngine()
    counter = iter(range(10**6))

    def run():
        k = next(counter)
        engine.run_many(tasks, model, [tmp_path / f"b{k}_{i}" for i in range(replicas)])

    t0 = time.perf_counter()
    benchmark.pedantic(run, rounds=2, warmup_rounds=1, iterations=1)
    _spent[key] = _spent.get(key, 0) + time.perf_counter() - t0
    s_per_step = benchmark.stats.stats.mean / steps
    _last[key] = (n, s_per_step)
    row = {"n": n, "n_atoms": atoms, "engine": "batched", "replicas": replicas, "device": model.device,
           "seconds_per_step": s_per_step, "steps_per_s": 1 / s_per_step,
           "replica_steps_per_s": replicas / s_per_step, "atom_steps_per_s": replicas * atoms / s_per_step}
    if (model.name, n) in _ase_s_per_step:
        row["speedup_vs_ase"] = row["replica_steps_per_s"] * _ase_s_per_step[(model.name, n)]
    benchmark.extra_info.update(row)
    _record(pto_results, model.name, row)


def test_engine_overhead(benchmark, pto_results, tmp_path):
    """Harness overhead per MD step (sampling, blow-up checks, checkpoint): the engine's step minus
    a bare ASE Langevin step, next to a force call, with a cheap model (synthetic elastic network,
    5x5x5 = 625 atoms)."""
    from pto_checks.models.synthetic import make

    calc = make("md_polar")
    atoms = structures.supercell(structures.tetragonal(a=3.9, c=4.15), 5)
    atoms.rattle(0.01, seed=0)
    atoms.calc = calc

    def force_call():
        atoms.positions = atoms.positions + 1e-6  # force a recomputation
        atoms.get_forces()
        atoms.get_stress()

    t_force = min(_timeit(force_call) for _ in range(5))
    steps = 200

    def bare_ase():  # the same Langevin MD without the harness (no sampling, checks, checkpoints)
        from ase.md.langevin import Langevin
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        a = structures.supercell(structures.tetragonal(a=3.9, c=4.15), 5)
        MaxwellBoltzmannDistribution(a, temperature_K=300, rng=np.random.default_rng(0))
        a.calc = calc
        Langevin(a, timestep=2 * units.fs, temperature_K=300, friction=0.01 / units.fs,
                 rng=np.random.default_rng(1)).run(steps)

    t_bare = min(_timeit(bare_ase) for _ in range(3)) / steps
    counter = iter(range(10**6))

    def run():
        ASEEngine().run(_task(5, steps), calc, tmp_path / f"o{next(counter)}")

    benchmark.pedantic(run, rounds=3, iterations=1)
    t_step = benchmark.stats.stats.min / steps
    row = {"force_call_s": t_force, "bare_ase_step_s": t_bare, "engine_step_s": t_step,
           "harness_overhead_s_per_step": t_step - t_bare,
           "harness_overhead_fraction_of_cheap_call": (t_step - t_bare) / t_force}
    benchmark.extra_info.update(row)
    entry = pto_results.model_entry("synthetic:md_polar")["quantities"].setdefault("benchmark", {})
    entry["engine_overhead"] = {"value": row, "unit": "s"}


def _timeit(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
