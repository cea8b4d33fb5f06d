"""Small versions of each case of benchmarks/calibrate_statistics.py, through the same public path
(pto_checks.statistics.run_statistics with the start detected on an independent potential
energy, decisions.decide_series, statistics.combine_replicas, analysis.summarize_run +
phase.decide_phase).  The benchmark runs >= 2000 series per case; these check the direction and
gross size of each result in seconds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from pto_checks import statistics
from pto_checks.decisions import Side, decide_series

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cal():
    path = ROOT / "benchmarks" / "calibrate_statistics.py"
    spec = importlib.util.spec_from_file_location("calibrate_statistics", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ar1_intervals_cover_and_decide_rarely_at_the_threshold(cal):
    rng = np.random.default_rng(3)
    xs = cal.ar1(rng, 150, 200, 10.0)  # n_eff 20
    es = rng.standard_normal(xs.shape)
    ds = [decide_series(cal.run_stats(x, e), 0.0, settings=cal.SETTINGS) for x, e in zip(xs, es, strict=True)]
    coverage = np.mean([d.interval.low <= 0 <= d.interval.high for d in ds])
    assert coverage >= 0.88, coverage  # 0.95 expected; 150 series: sd 0.018
    assert np.mean([d.side is not Side.UNDECIDED for d in ds]) <= 0.12


def test_replica_intervals_cover(cal):
    rng = np.random.default_rng(4)
    xs = cal.ar1(rng, 240, 100, 10.0)  # n_eff 10 per replica
    es = rng.standard_normal(xs.shape)
    st = [cal.run_stats(x, e) for x, e in zip(xs, es, strict=True)]
    combined = [statistics.combine_replicas(st[i:i + 3]) for i in range(0, len(st), 3)]
    assert all(c.replicas == 3 for c in combined)
    ds = [decide_series(c, 0.0, settings=cal.SETTINGS) for c in combined]
    assert np.mean([d.interval.low <= 0 <= d.interval.high for d in ds]) >= 0.88


def test_a_window_shorter_than_the_slow_oscillation_is_never_decided(cal):
    rng = np.random.default_rng(5)
    n = int(3.0 / cal.DT_PS)
    t = np.arange(n) * cal.DT_PS
    xs = cal.ar1(rng, 60, n, 10.0) + 2.0 * np.sin(2 * np.pi * t / 4.5 + rng.uniform(0, 2 * np.pi, (60, 1)))
    es = rng.standard_normal(xs.shape)
    ds = [decide_series(cal.run_stats(x, e), 0.0, settings=cal.SETTINGS) for x, e in zip(xs, es, strict=True)]
    assert all(d.side is Side.UNDECIDED for d in ds)


def test_a_flipping_polarization_is_not_decided_non_polar(cal):
    out = cal.telegraph_case(np.random.default_rng(6), 6, length_ps=30.0)
    assert out["decided_nonpolar"] == 0.0 and out["decided_polar"] > 0.5, out


def test_a_correlated_paraelectric_field_is_not_decided_polar(cal):
    out = cal.correlated_field_case(np.random.default_rng(7), 4, frames=60)
    assert out["decided_polar"] == 0.0, out
    assert out["mean_polar_order"] > out["polar_order_threshold"]  # the per-frame order alone would call it polar


def test_a_real_transient_is_still_skipped(cal):
    """The start (the earliest within 10 % of the best n_eff on the potential energy) still skips
    an equilibration transient that the decided series shares: the intervals keep covering."""
    rows = cal.transient_case(np.random.default_rng(8), 150)
    for r in rows:
        assert r["coverage"] >= 0.88, r  # 0.95 expected; 150 series: sd 0.018
        assert r["mean_start_ps"] > 0.1, r  # the transient is cut, not kept
