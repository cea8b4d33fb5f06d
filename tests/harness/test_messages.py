"""Every inconclusive dynamic verdict names the one step that would decide it (a longer run with its
estimated length at that temperature, a larger cell, a run that samples a missing quantity) and no
message prints a NaN: scanned over synthetic sweeps (real short MD of a synthetic model in both
ensembles, and constructed rows: small cells, rows without statistics, a blow-up with no samples)."""

from __future__ import annotations

import math
import re

import pytest

from pto_checks import analysis, stages, statistics, verdicts
from pto_checks.cache import Cache
from pto_checks.decisions import Interval, Side, StatisticsSettings, ThresholdDecision, decide_threshold
from pto_checks.md.sweep import Sweep
from pto_checks.models import load_model
from pto_checks.protocols import apply_overrides, get_protocol

NAN = re.compile(r"\bnan\b", re.IGNORECASE)
STEP = re.compile(r"more ps at \d+ K|larger cell|replica|no run length decides it|a run at \d+ K that samples it")
NPT = (verdicts.no_melting_or_instability, verdicts.polar_at_low_temperature, verdicts.cubic_above_tc,
       verdicts.no_supertetragonal, verdicts.tc_vs_experiment)
NVT = (verdicts.no_melting_or_instability, verdicts.polar_at_low_temperature, verdicts.polarization_vanishes)


def _scan(sweep, seen: list | None = None) -> list[str]:
    """Problems in the messages of every dynamic verdict of ``sweep`` (inconclusive ones appended
    to ``seen``)."""
    problems = []
    for fn in NPT if sweep["ensemble"] == "npt" else NVT:
        v = fn(sweep, "PBE")
        if v.inconclusive and seen is not None:
            seen.append(v)
        texts = [v.message] + [verdicts.needs_summary(v)] if v.inconclusive else [v.message]
        for text in texts:
            if NAN.search(text):
                problems.append(f"{fn.__name__}: NaN in {text[:300]!r}")
        if v.inconclusive and not STEP.search(verdicts.needs_summary(v)):
            problems.append(f"{fn.__name__}: names no step: {verdicts.needs_summary(v)!r}")
    return problems


@pytest.fixture(scope="module")
def md_sweeps(tmp_path_factory):
    """Real MD of a synthetic model on 2x2x2 cells at 300 and 1000 K, NPT and NVT: 40 and 200
    steps (too short for an error estimate; long enough for one)."""
    model = load_model("synthetic:md_polar", "cpu")
    out = []
    for steps in (40, 200):
        proto = apply_overrides(get_protocol("smoke"), [f"md.steps={steps}", "md.sample_every=5",
                                                        "md.temperatures_K=300,1000", "md.checkpoint_every=200"])
        cache = Cache(tmp_path_factory.mktemp(f"md{steps}"))
        for ens, integ in (("npt", "melchionna"), ("nvt", "langevin")):
            rows = stages.md_sweep(model, proto, cache, ens, integ, progress=False)
            out.append(Sweep(ens, integ, rows, proto))
    return out


def test_no_nan_and_a_step_in_the_messages_of_synthetic_md_sweeps(md_sweeps):
    seen: list = []
    problems = [p for s in md_sweeps for p in _scan(s, seen)]
    assert not problems, "\n".join(problems)
    assert seen, "the scan must see inconclusive verdicts"


def _row(t, series, supercell=2, **extra):
    rs = statistics.run_statistics(series, {}, 0.04, tuple(k for k in ("tetragonality_frames",) if k in series))
    n = rs.n
    return {"T_K": float(t), "stats": rs.to_dict(), "failure": None, "task": {"supercell": supercell},
            "a": 3.9, "c": 4.1, "c_over_a": 1.05, "P_abs": 0.5, "Pz": 0.5, "lindemann": 0.08, "order": 0.99,
            "phase": "tetragonal", "n_samples": n, **extra}


def _constructed_sweeps():
    import numpy as np

    rng = np.random.default_rng(5)
    n = 200
    t = np.arange(n) * 0.04
    flat = {"c_over_a": 1.05 + 0.002 * rng.standard_normal(n), "lindemann": 0.08 + 0.002 * rng.standard_normal(n),
            "order": 0.99 + 0.002 * rng.standard_normal(n)}
    drifting = dict(flat, tetragonality_frames=1.05 + 0.02 * t, c_over_a=1.05 + 0.02 * t)
    rows = [
        _row(300, flat),  # 2x2x2: the c/a rule (no per-frame polar order)
        _row(600, drifting),  # still drifting, across the supertetragonal limit
        _row(800, {"lindemann": flat["lindemann"], "order": flat["order"]}),  # no c/a statistics
        _row(900, {k: v[:5] for k, v in flat.items()}),  # too short for an error estimate
        {"T_K": 1000.0, "failure": {"reason": "non-finite energy or forces", "step": 0}, "stats": {"series": {}},
         "a": math.nan, "c": math.nan, "c_over_a": math.nan, "P_abs": math.nan, "Pz": math.nan,
         "lindemann": math.nan, "order": math.nan, "phase": "unstable", "n_samples": 0},
    ]
    out = []
    for ens in ("npt", "nvt"):
        out.append({"rows": rows, "tc": {}, "ensemble": ens, "integrator": "x", "protocol": get_protocol("smoke"),
                    "table": analysis.format_table(rows)})
        # one temperature at a time: the top of the sweep undecided in each way
        for r in rows[:-1]:
            out.append({"rows": [r], "tc": {}, "ensemble": ens, "integrator": "x", "protocol": get_protocol("smoke"),
                        "table": analysis.format_table([r])})
    return out


def test_no_nan_and_a_step_in_the_messages_of_constructed_sweeps():
    seen: list = []
    problems = [p for s in _constructed_sweeps() for p in _scan(s, seen)]
    assert not problems, "\n".join(problems)
    assert len(seen) >= 10


def test_table_prints_a_dash_for_what_a_run_did_not_measure():
    row = {"T_K": 1000.0, "a": math.nan, "c": math.nan, "c_over_a": math.nan, "P_abs": math.nan,
           "Pz": math.nan, "phase": "unstable"}
    assert not NAN.search(analysis.format_table([row]))


def test_small_cell_message_compares_c_over_a_not_an_inapplicable_polar_order():
    """2x2x2: the per-frame polar order does not apply; the message shows the c/a comparisons the
    rule made, not 'polar order = nan +- nan'."""
    import numpy as np

    rng = np.random.default_rng(1)
    row = _row(300, {"c_over_a": 1.05 + 0.002 * rng.standard_normal(300),
                     "lindemann": 0.08 + 0.002 * rng.standard_normal(300),
                     "order": 0.99 + 0.002 * rng.standard_normal(300)})
    phase, decisions, text = verdicts.phase_decision(row, "npt")
    assert phase == "tetragonal" and "polar order" not in text and "c/a - 1" in text


@pytest.mark.parametrize(("kwargs", "needle"), [
    (dict(mean=1.004, sem=0.004, threshold=1.0, n_eff=20, n_eff_per_ps=2.0), "needs about"),
    (dict(mean=1.0, sem=0.004, threshold=1.0, n_eff=20, n_eff_per_ps=2.0), "no run length decides it"),
    (dict(mean=1.004, sem=math.nan, threshold=1.0, n_eff=math.nan, production_ps=0.2), "needs at least about"),
    (dict(mean=1.004, sem=0.004, threshold=1.0, n_eff=20, n_eff_per_ps=2.0, plateau=False, production_ps=10.0,
          settings=StatisticsSettings(require_plateau=True)), "needs at least about"),
    (dict(mean=1.004, sem=0.004, threshold=1.0, n_eff=20, n_eff_per_ps=2.0, stationary=False, production_ps=10.0),
     "needs at least about 10 more ps"),
    (dict(mean=1.004, sem=0.004, threshold=1.0, n_eff=20, n_eff_per_ps=2.0, equilibrated=False, t0_ps=8.0,
          production_ps=2.0), "needs at least about"),
    (dict(mean=1.004, sem=0.004, threshold=1.0, n_eff=4, n_eff_per_ps=2.0), "needs about"),
])
def test_each_undecided_reason_estimates_the_run_length(kwargs, needle):
    d = decide_threshold(**kwargs, temperature_K=600)
    text = d.describe("x")
    assert d.side is Side.UNDECIDED and needle in text and not NAN.search(text), text


def test_a_decision_without_numbers_prints_none():
    nan = math.nan
    d = ThresholdDecision(Side.UNDECIDED, nan, nan, nan, Interval(nan, nan, 0.95), nan, "no statistics for c/a",
                          None, 600.0, step="a run at 600 K that samples it")
    assert not NAN.search(d.describe("c/a")) and "a run at 600 K that samples it" in d.describe("c/a")
    again = ThresholdDecision.from_dict(d.to_dict())
    assert again.step == d.step and not NAN.search(again.describe("c/a"))
