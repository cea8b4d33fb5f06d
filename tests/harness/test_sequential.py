"""Sequential MD (``md.max_steps``): chunked runs equal long runs bit for bit, the rule's looks and
level, cache keys by rule, and the sequential sweep on ``synthetic:ferro`` (J = 0.3, NVT, 2x2x2:
the imposed c/a pins the polar axis, so |<P>| is a clean order parameter on a small cell)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pto_checks.cache import Cache
from pto_checks.decisions import StatisticsSettings
from pto_checks.executors import InProcess
from pto_checks.md import ASEEngine, MDTask
from pto_checks.md import sequential as seq
from pto_checks.md.engines import run_until
from pto_checks.md.sweep import Sweep, md_key, md_sweep
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
    proto = apply_overrides(PROTOCOLS["smoke"], ["md.steps=100", "md.max_steps=800"])
    rule = seq.SequentialRule(100, 800, 0.95)

    def key(task, r=rule, parent=None):
        return seq.task_key(model, task, seq.EngineName.ASE, r, parent, proto)[0]

    k = key(t)
    assert k != md_key(model, t, "ase", proto)[0] and k != md_key(model, replace(t, steps=800), "ase", proto)[0]
    assert k == key(replace(t, steps=400))
    assert k != key(t, seq.SequentialRule(100, 1600, 0.95))
    assert k != key(t, parent="parent")
    # the sweep's plan (Tc resolution, cooling branch) decides which runs are made, not what a run
    # computes: a run made under one plan is found under another
    for plan in (["md.tc_resolution_K=250"], ["md.cooling=false"]):
        other = apply_overrides(proto, plan)
        assert seq.task_key(model, t, seq.EngineName.ASE, rule, None, other)[0] == k, plan
        assert md_key(model, t, "ase", other)[0] == md_key(model, t, "ase", proto)[0], plan


def ferro_model():
    from pto_checks.models.ferro import FerroParameters
    from pto_checks.models.ferro import make as make_ferro

    calc = make_ferro(FerroParameters(J_eV_per_A2=0.3))
    return SimpleNamespace(name="ferro-J0.3", calculator=calc, device="cpu",
                           identity=lambda: {"ferro": calc.identity()})


FERRO_SMOKE = ["md.supercell=2", "md.temperatures_K=700,1700", "md.steps=500", "md.max_steps=4000",
               "md.sample_every=5", "md.trajectory_every=20", "md.checkpoint_every=250",
               "md.tc_resolution_K=1000"]


def test_sequential_sweep_on_ferro(tmp_path):
    """NVT on synthetic:ferro (J = 0.3, 2x2x2): 700 K is decided polar before the cap (fewer steps
    than the fixed protocol at the cap); 1700 K is decided cubic; the bracket (1000 K) meets the
    resolution asked for, so no temperature is added; the cooling branch starts from the 1700 K
    final frame (its key names that run) and stops at the first polar temperature; progress names
    the chunk and what is undecided; a second call reads everything from the cache."""
    proto = apply_overrides(PROTOCOLS["smoke"], FERRO_SMOKE)
    model = ferro_model()
    lines: list[str] = []
    rows = md_sweep(model, proto, Cache(tmp_path / "c"), "nvt", "langevin", write=lines.append)
    sweep = Sweep("nvt", "langevin", rows, proto)
    by_t = {r["T_K"]: r for r in sweep.rows}
    assert sorted(by_t) == [700, 1700]
    assert by_t[700]["sequential"]["phase"] == "tetragonal" and by_t[700]["steps_reached"] < 4000
    assert by_t[1700]["sequential"]["phase"] == "cubic", by_t[1700]["sequential"]
    tc = sweep.tc
    assert tc["heating"]["status"] == "bracketed" and tc["bracket_K"] == [700, 1700] and tc["tc"] == 1200
    assert [r["T_K"] for r in sweep.cooling_rows] == [700]
    cool = sweep.cooling_rows[0]
    assert cool["start_from"] and cool["branch"] == "cooling" and cool["sequential"]["phase"] == "tetragonal"
    assert tc["cooling"]["bracket_K"] == [700, 1700] and tc["hysteresis_K"] == 0
    assert any("sequential chunk 1/4 (to 500 steps); undecided: 700 K, 1700 K" in ln for ln in lines), lines
    # one line per temperature and look, saying what the look decided (a chunk runs for minutes)
    looks = [ln for ln in lines if " 1700 K, look " in ln]
    assert looks and looks[-1].endswith("decided cubic"), lines
    assert any(" 700 K, look " in ln and ln.endswith("decided tetragonal") for ln in lines), lines
    assert all("undecided (" in ln and "extended to the next look" in ln for ln in looks[:-1]), looks
    again = md_sweep(model, proto, Cache(tmp_path / "c"), "nvt", "langevin", write=lines.append)
    assert all(r["cache_hit"] for r in again) and [r["T_K"] for r in again] == [700, 1700]
    assert Sweep("nvt", "langevin", again, proto).tc == tc
    assert "cooling_rows" in sweep.to_dict()
    # the existing verdicts read the sequential sweep (rows decided at the level per look)
    from pto_checks import verdicts

    for d in (sweep, {"rows": sweep.rows, "ensemble": "nvt", "integrator": "langevin", "protocol": proto,
                      "table": sweep.table, "tc": tc}):
        assert verdicts.polar_at_low_temperature(d, "PBEsol").passed
        # the verdict brackets the loss of Pz where the sweep's Tc does (one phase rule); [700, 1700] K
        # reaches past the study's NVT band, so it is not decided against the band
        v = verdicts.polarization_vanishes(d, "PBEsol")
        assert v.details["nvt_bracket"]["low"] == 700 and v.details["nvt_bracket"]["high"] == 1700, v.message
        assert v.outcome.value == "inconclusive", v.message
        assert verdicts.no_melting_or_instability(d, "PBEsol").passed
        assert verdicts.tc_vs_experiment(d, "PBEsol").outcome.value in ("pass", "fail", "inconclusive")


def _stub_sweep(monkeypatch, tc_true: float, undecided_within: float = 0.0):
    """Replace the MD by a known phase diagram: polar below ``tc_true``, cubic above, undecided
    within ``undecided_within`` K of it; returns the list of temperatures run."""
    ran: list[float] = []

    def fake_run(model, protocol, cache, runs, rule, ensemble, write, limits, label, executor=None):
        for r in runs:
            t = r.task.temperature_K
            ran.append(t)
            r.key, r.folder = f"k{t}", None
            r.row = {"T_K": t, "branch": r.branch, "start_from": r.start_from}

    def fake_decide(row, ensemble):
        t = row["T_K"]
        if abs(t - tc_true) <= undecided_within:
            return None, "undecided"
        return ("tetragonal" if t < tc_true else "cubic"), ""

    monkeypatch.setattr(seq, "run_sequential", fake_run)
    monkeypatch.setattr(seq, "decide", fake_decide)
    return ran


def test_bisection_narrows_the_bracket_to_the_resolution(monkeypatch):
    ran = _stub_sweep(monkeypatch, tc_true=1130.0)
    proto = apply_overrides(PROTOCOLS["smoke"], ["md.temperatures_K=700,1000,1300,1600", "md.max_steps=600",
                                                 "md.tc_resolution_K=25"])
    model = SimpleNamespace(name="stub", identity=lambda: {})
    heat, cool, tc = seq.sequential_sweep(model, proto, None, "nvt", "langevin", "ase", lambda _: None)
    lo, hi = tc["bracket_K"]
    assert lo < 1130 < hi and hi - lo <= 25 and tc["heating"]["uncertainty_K"] == (hi - lo) / 2
    assert ran[:4] == [700, 1000, 1300, 1600] and ran[4] == 1150  # the middle of [1000, 1300]
    # cooling: from 1600 down the grid, stops at the first polar temperature (1000), then bisected
    assert [r["T_K"] for r in cool][:1] == [1300] and tc["cooling"]["status"] == "bracketed"
    assert all(r["start_from"] for r in cool)
    assert tc["cooling"]["bracket_K"][1] - tc["cooling"]["bracket_K"][0] <= 25


def test_bisection_stops_at_an_undecided_temperature(monkeypatch):
    _stub_sweep(monkeypatch, tc_true=1150.0, undecided_within=30.0)
    proto = apply_overrides(PROTOCOLS["smoke"], ["md.temperatures_K=700,1000,1300,1600", "md.max_steps=600",
                                                 "md.cooling=false"])
    model = SimpleNamespace(name="stub", identity=lambda: {})
    heat, cool, tc = seq.sequential_sweep(model, proto, None, "nvt", "langevin", "ase", lambda _: None)
    assert tc["heating"]["status"].startswith("bisection stopped: 1150 K undecided")
    assert tc["bracket_K"] == [1000, 1300] and not cool and tc["cooling"]["status"] == "not run"


def test_bisection_does_not_repeat_an_undecided_grid_temperature(monkeypatch):
    """[700, 1300] bracket with 1000 K (a grid temperature) undecided: its middle is 1000 K, which
    has run to the cap already; the bisection stops there instead of running it again."""
    ran = _stub_sweep(monkeypatch, tc_true=1000.0, undecided_within=10.0)
    proto = apply_overrides(PROTOCOLS["smoke"], ["md.temperatures_K=700,1000,1300,1600", "md.max_steps=600",
                                                 "md.cooling=false"])
    model = SimpleNamespace(name="stub", identity=lambda: {})
    heat, _, tc = seq.sequential_sweep(model, proto, None, "nvt", "langevin", "ase", lambda _: None)
    assert ran == [700, 1000, 1300, 1600] and [r["T_K"] for r in heat] == [700, 1000, 1300, 1600]
    assert tc["heating"]["status"] == "bisection stopped: 1000 K undecided at the cap"
    assert tc["bracket_K"] == [700, 1300] and tc["heating"]["uncertainty_K"] == 300


def test_interrupted_sequential_sweep_resumes_to_the_same_rows(tmp_path, monkeypatch):
    """Interrupted in the middle of a chunk (a checkpoint 20 steps short of the look), the rerun
    resumes and ends with the same samples, steps reached and decisions as an uninterrupted one.
    The decision is stubbed (decided from 160 steps on) so the test needs no long MD."""
    proto = apply_overrides(PROTOCOLS["smoke"], ["md.temperatures_K=600", "md.steps=40", "md.max_steps=320",
                                                 "md.cooling=false"])
    model = SimpleNamespace(name="md_polar", calculator=make("md_polar"), identity=lambda: {"m": "md_polar"})
    monkeypatch.setattr(seq, "decide", lambda row, ens: ("tetragonal" if row["n_samples"] * 2 * 5 >= 160 else None,
                                                         ""))
    ref = md_sweep(model, proto, Cache(tmp_path / "ref"), "nvt", "langevin", progress=False)
    calls = []

    class Interrupted(InProcess):
        """The in-process executor, stopped 20 steps short of the 160-step look (chunks are its jobs)."""

        def run_jobs(self, jobs, model, progress=None):
            for i, job in enumerate(jobs):
                calls.append(job.tasks[0].steps)
                if job.tasks[0].steps == 160:
                    short = replace(job, tasks=tuple(replace(t, steps=140) for t in job.tasks))
                    list(super().run_jobs([short], model))
                    raise KeyboardInterrupt
                for _, res in super().run_jobs([job], model):
                    yield i, res

    with pytest.raises(KeyboardInterrupt):
        md_sweep(model, proto, Cache(tmp_path / "int"), "nvt", "langevin", progress=False, executor=Interrupted())
    resumed = md_sweep(model, proto, Cache(tmp_path / "int"), "nvt", "langevin", progress=False)
    assert calls == [40, 80, 160]
    assert ref[0]["steps_reached"] == resumed[0]["steps_reached"] == 160
    for key in ("P_abs_mean", "c_over_a", "n_samples"):
        assert ref[0][key] == resumed[0][key]
    assert (Path(ref[0]["folder"]) / "samples.csv").read_text() == (Path(resumed[0]["folder"]) / "samples.csv"
                                                                     ).read_text()


def test_looks_decide_by_the_rule_of_the_stored_row(tmp_path, monkeypatch):
    """Each look decides on a row that names its task (the cell size selects the phase rule: the
    per-frame polar order from 27 cells on), as the stored row does: a look and its row never
    apply two rules to the same samples."""
    seen: list[dict] = []
    real = seq.decide

    def spy(row, ensemble):
        seen.append(row)
        return real(row, ensemble)

    monkeypatch.setattr(seq, "decide", spy)
    proto = apply_overrides(PROTOCOLS["smoke"], [*FERRO_SMOKE, "md.cooling=false"])
    rows = md_sweep(ferro_model(), proto, Cache(tmp_path / "c"), "nvt", "langevin", write=lambda _line: None)
    looks = [r for r in seen if "sequential" not in r]
    assert looks and all(r["task"]["supercell"] == 2 for r in looks)
    stored = {r["T_K"]: r for r in rows}
    for t, row in stored.items():  # the last look of each temperature decided what its stored row says
        last = [r for r in looks if r["T_K"] == t][-1]
        assert real(last, "nvt")[0] == row["sequential"]["phase"], (t, row["sequential"])
