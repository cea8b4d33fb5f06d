"""The accuracy verdict decides from intervals: the frames are a correlated time series (statistical
inefficiency, Student's t with the effective degrees of freedom), and an interval containing the
limit is INCONCLUSIVE in the outcome, not only in the message."""

from __future__ import annotations

import numpy as np
import pytest

from pto_checks import verdicts
from pto_checks.accuracy.metrics import _rmse_se
from pto_checks.decisions import Outcome

CONTEXT = dict(functional="PBE", data_functional="PBEsol", subsample="every 10th", reduced=False)


def _verdict(value, se, n_eff=30.0, limit=3.2):
    rows = [{"temperature_K": 300, "e": value, "e_se": se, "e_n_eff": n_eff, "n_frames": 30}]
    return verdicts.accuracy_bound("accuracy_energy", rows, "e", "e_se", limit, "meV/atom", "relative energy RMSE",
                                   n_eff_key="e_n_eff", **CONTEXT)


def test_an_interval_straddling_the_limit_is_inconclusive_in_the_outcome():
    v = _verdict(3.1, 0.5)  # 3.1 +- 0.5 against 3.2: below on the mean, undecided on the interval
    assert v.outcome is Outcome.INCONCLUSIVE and not v.passed and v.message.startswith("INCONCLUSIVE")
    assert v.interval.low < 3.2 < v.interval.high
    v = _verdict(3.3, 0.5)  # above on the mean: still undecided, not a fail
    assert v.outcome is Outcome.INCONCLUSIVE


def test_decided_intervals_pass_and_fail():
    assert _verdict(2.0, 0.3).outcome is Outcome.PASS
    v = _verdict(6.4, 0.7)
    assert v.outcome is Outcome.FAIL and "above the limit at 300 K" in v.message


def test_a_fail_at_one_temperature_outweighs_an_undecided_one():
    rows = [{"temperature_K": 300, "e": 3.1, "e_se": 0.5, "e_n_eff": 30.0},
            {"temperature_K": 900, "e": 13.0, "e_se": 1.7, "e_n_eff": 25.0}]
    v = verdicts.accuracy_bound("accuracy_energy", rows, "e", "e_se", 3.2, "meV/atom", "RMSE",
                                n_eff_key="e_n_eff", **CONTEXT)
    assert v.outcome is Outcome.FAIL and "undecided at 300 K" in v.message


def test_few_effective_frames_widen_the_interval_student_t_not_z():
    """2.4 +- 0.35 against 3.2 is decided with z = 1.96 (upper end 3.09), not with t at n_eff 5
    (t(4) = 2.78: upper end 3.37)."""
    assert _verdict(2.4, 0.35, n_eff=100).outcome is Outcome.PASS
    assert _verdict(2.4, 0.35, n_eff=5).outcome is Outcome.INCONCLUSIVE
    assert verdicts.t_quantile(0.95, 4) == pytest.approx(2.776, abs=1e-3)


def _ar1(rng, n, phi):
    x = np.empty(n)
    x[0] = rng.standard_normal()
    for i in range(1, n):
        x[i] = phi * x[i - 1] + np.sqrt(1 - phi**2) * rng.standard_normal()
    return x


def test_correlated_frames_count_as_fewer_independent_ones():
    rng = np.random.default_rng(3)
    se_corr, n_eff = _rmse_se(_ar1(rng, 300, 0.9) ** 2)
    assert n_eff < 100  # g of x^2 for AR(1) phi 0.9: (1 + phi^2) / (1 - phi^2) = 9.5
    se_ind, n_ind = _rmse_se(rng.standard_normal(300) ** 2)
    assert n_ind > 150


def test_interval_coverage_on_correlated_errors():
    """Coverage of the true RMSE (1 for unit-variance errors) by the 95 % interval, through
    _rmse_se and accuracy_bound, on AR(1) per-frame errors (phi 0.8, 300 frames: g of the squares
    ~ 4.6; the AIMD frames' g is 7-14).  Measured (1000 series each, seed 5): 0.91 at phi 0.8, 0.85
    at phi 0.95, 0.89 for 30 frames at phi 0.5, 0.94 for independent frames; the
    frames-as-independent rule with z = 1.96 covers 0.64 / 0.31 / 0.83.  Below 0.95 where g is
    large: g is itself estimated from the series and the squares are skewed; a subsample with
    g ~ 1 (every 10th frame) is close to nominal."""
    rng = np.random.default_rng(11)
    hit, naive_hit, n = 0, 0, 400
    for _ in range(n):
        e = _ar1(rng, 300, 0.8)
        ms = e**2
        rmse = float(np.sqrt(ms.mean()))
        se, n_eff = _rmse_se(ms)
        lo = verdicts.accuracy_bound("c", [{"temperature_K": 300, "v": rmse, "s": se, "n": n_eff}], "v", "s", 1.0,
                                     "", "x", n_eff_key="n", **CONTEXT).interval
        hit += lo.low <= 1.0 <= lo.high
        naive = float(np.std(ms, ddof=1) / np.sqrt(len(ms)) / (2 * rmse))
        naive_hit += abs(rmse - 1.0) <= 1.96 * naive
    assert 0.87 <= hit / n <= 0.99, hit / n
    assert naive_hit / n < 0.85, naive_hit / n
