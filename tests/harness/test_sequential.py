"""Sequential MD (``md.max_steps``): chunked runs equal long runs bit for bit, the rule's looks and
level, cache keys by rule, and the sequential sweep on ``synthetic:ferro`` (J = 0.3, NVT, 2x2x2:
the imposed c/a pins the polar axis, so |<P>| is a clean order parameter on a small cell)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from pto_checks.cache import Cache
from pto_checks.decisions import StatisticsSettings
from pto_checks.md import ASEEngine, MDTask
from pto_checks.md import sequential as seq
from pto_checks.md.engines import run_until
from pto_checks.md.sweep import Sweep, md_sweep, task_key
from pto_checks.models.synthetic import make
from pto_checks.protocols import PROTOCOLS, apply_overrides


def _task(ensemble="nvt", integrator="langevin", steps=120, temperature=600.0, seed=5):
    p = PROTOCOLS["smoke"].md
    return MDTask(ensemble, integrator, temperature, 2, p.start_a, p.start_c, steps, 2.0, seed, p.ttime_fs,
                  p.pfactor_ase, p.mtk_tdamp_fs, p.mtk_pdamp_fs, p.friction_per_fs, 5, 4, 20)


@pytest.mark.parametrize(("ensemble", "integrator"), [("npt", "melchionna"), ("nvt", "langevin")])
def test_chunked_run_equals_one_long_run_bit_for_bit(tmp_path, ensemble, integrator):
    """Run to 40, extend to 80, then 120 steps (checkpoints between chunks): samples, frames and
    final frame equal one run asked for 120 steps from the start."""
    task = _task(ensemble, integrator)
    model = make("md_polar")
    ref = ASEEngine().run(task, model, tmp_path / "ref")
    work = tmp_path / "chunks"
    for n in (40, 80, 120):
        res = run_until("ase", [task], model, [work], [n])[0]
        assert res["samples"][-1]["step"] == n
    assert res["samples"] == ref["samples"]
    assert len(res["frames"]) == len(ref["frames"])
    for a, b in zip(res["frames"], ref["frames"], strict=True):
        assert np.array_equal(a["positions"], b["positions"]) and np.array_equal(a["cell"], b["cell"])
    assert np.array_equal(res["last_frame"]["positions"], ref["last_frame"]["positions"])


def test_rule_looks_and_bonferroni_level():
    rule = seq.SequentialRule(1000, 8000, 0.95)
    assert rule.looks == (1000, 2000, 4000, 8000) and rule.n_looks == 4
    assert seq.SequentialRule(1000, 6000, 0.95).looks == (1000, 2000, 4000, 6000)
    s = StatisticsSettings()
    assert s.z(looks=4) == pytest.approx(2.498, abs=1e-3) and s.z() == pytest.approx(1.960, abs=1e-3)


def test_protocol_fields_validated():
    p = apply_overrides(PROTOCOLS["smoke"], ["md.max_steps=1200", "md.tc_resolution_K=50"])
    assert p.md.sequential and p.md.tc_resolution_K == 50
    assert not PROTOCOLS["smoke"].md.sequential
    with pytest.raises(ValueError, match="max_steps"):
        apply_overrides(PROTOCOLS["smoke"], ["md.max_steps=100"])
    with pytest.raises(ValueError, match="tc_resolution_K"):
        apply_overrides(PROTOCOLS["smoke"], ["md.tc_resolution_K=0"])


def test_cache_key_by_rule_not_by_length():
    """A sequential entry is keyed by its rule (min, max, schedule, correction), never confused with
    a fixed-length run of the length it reached; a cooling step's key names its parent."""
    model = SimpleNamespace(identity=lambda: {"m": 1})
    t = _task(steps=100)
    rule = seq.SequentialRule(100, 800, 0.95)
    k = seq.task_key(model, t, seq.EngineName.ASE, rule, None)
    assert k != task_key(model, t, "ase") and k != task_key(model, replace(t, steps=800), "ase")
    assert k == seq.task_key(model, replace(t, steps=400), seq.EngineName.ASE, rule, None)
    assert k != seq.task_key(model, t, seq.EngineName.ASE, seq.SequentialRule(100, 1600, 0.95), None)
    assert k != seq.task_key(model, t, seq.EngineName.ASE, rule, "parent")


def ferro_model():
    from pto_checks.models.ferro import FerroParameters
    from pto_checks.models.ferro import make as make_ferro

    calc = make_ferro(FerroParameters(J_eV_per_A2=0.3))
    return SimpleNamespace(name="ferro-J0.3", calculator=calc, device="cpu",
                           identity=lambda: {"ferro": calc.identity()})


FERRO_SMOKE = ["md.supercell=2", "md.temperatures_K=600,1400", "md.steps=500", "md.max_steps=2000",
               "md.sample_every=5", "md.trajectory_every=20", "md.checkpoint_every=250",
               "md.tc_resolution_K=400"]


def test_sequential_sweep_on_ferro_decides_brackets_and_cools(tmp_path):
    """NVT on synthetic:ferro (J = 0.3): 600 K polar, 1400 K cubic, each decided before the cap;
    one bisection temperature (1000 K) narrows the bracket to the 400 K resolution asked for; the
    cooling branch starts from the 1400 K final frame; a second call reads everything from the
    cache; rows record the steps reached and the Sweep result carries heating and cooling Tc."""
    proto = apply_overrides(PROTOCOLS["smoke"], FERRO_SMOKE)
    model = ferro_model()
    lines: list[str] = []
    rows = md_sweep(model, proto, Cache(tmp_path / "c"), "nvt", "langevin", write=lines.append)
    sweep = Sweep("nvt", "langevin", rows, proto)
    temps = [r["T_K"] for r in sweep.rows]
    assert temps[0] == 600 and temps[-1] == 1400 and len(temps) == 3, temps
    assert all(r["sequential"]["decided"] for r in sweep.rows), [r["sequential"] for r in sweep.rows]
    assert all(500 <= r["steps_reached"] <= 2000 for r in sweep.rows)
    tc = sweep.tc
    assert tc["heating"]["status"] == "bracketed" and tc["bracket_K"][1] - tc["bracket_K"][0] <= 400
    assert tc["tc"] == tc["heating"]["tc"]
    assert sweep.cooling_rows and sweep.cooling_rows[0]["start_from"]
    assert tc["cooling"]["tc"] is None or tc["cooling"]["status"] in ("bracketed",) or "stopped" in tc["cooling"][
        "status"]
    assert any("sequential chunk 1/" in ln and "undecided" in ln for ln in lines)
    again = md_sweep(model, proto, Cache(tmp_path / "c"), "nvt", "langevin", write=lines.append)
    assert all(r["cache_hit"] for r in again) and [r["T_K"] for r in again] == temps
    assert Sweep("nvt", "langevin", again, proto).tc == tc
