"""Properties of the pure decision functions, through their public entry points, on generated inputs.

* a threshold decision is monotone in the threshold, symmetric under negation and invariant under
  translation (:func:`pto_checks.decisions.decide_threshold`, :func:`~pto_checks.decisions.decide_series`
  on the statistics of generated series, :func:`pto_checks.statistics.series_statistics`);
* the Tc bracket (:func:`pto_checks.phase.tc_bracket`) and the outcome class
  (:func:`pto_checks.sweep_class.classify`) do not depend on the order of the temperature grid, and a
  repeated temperature is refused;
* an interval contains its mean and widens with its level (and with the looks it is split over);
* a longer run of the same iid process gives an interval no wider on average.

Every property runs a fixed, small number of derandomized examples, so the module is deterministic
and takes seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from pto_checks.decisions import Side, StatisticsSettings, decide_series, decide_threshold
from pto_checks.phase import Phase, tc_bracket
from pto_checks.statistics import SeriesStats, series_statistics
from pto_checks.sweep_class import classify

RULE = StatisticsSettings()
SWAP = {Side.ABOVE: Side.BELOW, Side.BELOW: Side.ABOVE, Side.UNDECIDED: Side.UNDECIDED}


def fast(n: int):
    """A derandomized hypothesis profile of ``n`` examples (deterministic; no deadline, since the
    first call pays for importing scipy and pymbar)."""
    return settings(max_examples=n, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def series(draw) -> tuple[np.ndarray, float]:
    """(samples, sample interval in ps): an AR(1) process around an offset, sometimes with a
    relaxation at its start (so the not-equilibrated and drift paths are exercised too)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(24, 160))
    phi = draw(st.sampled_from([0.0, 0.3, 0.7]))
    scale = draw(st.sampled_from([1e-3, 0.1, 1.0, 30.0]))
    offset = draw(st.sampled_from([0.0, 1.0, -4.0, 250.0]))
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + math.sqrt(1.0 - phi**2) * noise[i]
    relax = draw(st.sampled_from([0.0, 0.0, 3.0, 20.0]))
    tau = draw(st.sampled_from([0.05, 0.3, 1.0]))
    x = offset + scale * (x + relax * np.exp(-np.arange(n) / (tau * n)))
    return x, 0.01


def _threshold(stats: SeriesStats, k: float) -> float:
    """A threshold ``k`` standard errors from the mean (a spread of the series when it has none)."""
    s = stats.sem if math.isfinite(stats.sem) and stats.sem > 0 else max(stats.std, 1e-9)
    return stats.mean + k * s


def _clear_of(d, threshold: float) -> bool:
    """The threshold is not within rounding of the ends of the interval that decides (floating
    point may move those ends by an ulp or so under negation or translation)."""
    iv = d.interval
    tol = 1e-7 * max(1.0, abs(threshold), abs(d.mean)) + 1e-7 * (abs(iv.high - iv.low) if math.isfinite(iv.high
                                                                                                  - iv.low) else 0)
    return all(not math.isfinite(e) or abs(e - threshold) > tol for e in (iv.low, iv.high))


#: thresholds a few standard errors from the mean, or far beyond (where a drift's reach decides)
ks = st.one_of(st.integers(-80, 80).map(lambda i: i / 10.0), st.sampled_from([-300.0, -60.0, 60.0, 300.0]))

#: how far the threshold moves, in standard errors
steps = st.one_of(st.integers(0, 60).map(lambda i: i / 10.0), st.sampled_from([20.0, 100.0, 1e4]))


# ---- (1) monotone in the threshold ---------------------------------------------------------------

@fast(200)
@given(mean=st.floats(-1e3, 1e3), sem=st.floats(0.0, 10.0), k=ks, dk=steps,
       n_eff=st.floats(1.0, 1e4), dof=st.sampled_from([2.0, 5.0, 30.0, math.inf]),
       looks=st.integers(1, 5),
       flags=st.one_of(st.just((True, True, True)), st.tuples(st.booleans(), st.booleans(), st.booleans())))
def test_threshold_decision_is_monotone_in_the_threshold(mean, sem, k, dk, n_eff, dof, looks, flags):
    eq, plateau, stationary = flags
    t, dt = mean + k * sem, dk * sem
    kw = dict(n_eff=n_eff, n_eff_per_ps=2.0, equilibrated=eq, plateau=plateau, stationary=stationary,
              settings=RULE, looks=looks, dof=dof)
    at = decide_threshold(mean, sem, t, **kw).side
    if at is Side.ABOVE:
        assert decide_threshold(mean, sem, t - dt, **kw).side is Side.ABOVE
    if at is Side.BELOW:
        assert decide_threshold(mean, sem, t + dt, **kw).side is Side.BELOW


@fast(100)
@given(xs=series(), k=ks, dk=steps)
def test_series_decision_is_monotone_in_the_threshold(xs, k, dk):
    stats = series_statistics(xs[0], "x", sample_interval_ps=xs[1])
    t = _threshold(stats, k)
    s = max(abs(t - stats.mean) / max(abs(k), 1e-9), 1e-9)
    at = decide_series(stats, t, settings=RULE).side
    event(at.value)
    if at is Side.ABOVE:
        assert decide_series(stats, t - dk * s, settings=RULE).side is Side.ABOVE
    if at is Side.BELOW:
        assert decide_series(stats, t + dk * s, settings=RULE).side is Side.BELOW


# ---- (2) symmetric under negation ----------------------------------------------------------------

@fast(200)
@given(mean=st.floats(-1e3, 1e3), sem=st.floats(0.0, 10.0), k=ks,
       dof=st.sampled_from([3.0, math.inf]), looks=st.integers(1, 4))
def test_negating_mean_and_threshold_swaps_above_and_below(mean, sem, k, dof, looks):
    t = mean + k * sem
    a = decide_threshold(mean, sem, t, settings=RULE, dof=dof, looks=looks)
    b = decide_threshold(-mean, sem, -t, settings=RULE, dof=dof, looks=looks)
    assert b.side is SWAP[a.side]
    assert (b.interval.low, b.interval.high) == pytest.approx((-a.interval.high, -a.interval.low))


@fast(100)
@given(xs=series(), k=ks)
def test_negating_the_series_and_the_threshold_swaps_above_and_below(xs, k):
    x, dt_ps = xs
    stats = series_statistics(x, "x", sample_interval_ps=dt_ps)
    t = _threshold(stats, k)
    d = decide_series(stats, t, settings=RULE)
    assume(_clear_of(d, t))
    event(f"{d.side.value} ({d.basis})")
    negated = decide_series(series_statistics(-x, "x", sample_interval_ps=dt_ps), -t, settings=RULE)
    assert negated.side is SWAP[d.side], (d.describe("x"), negated.describe("-x"))
    # the same through the scale of decide_series (how a check flips a sign)
    assert decide_series(stats, -t, scale=-1.0, settings=RULE).side is SWAP[d.side]


# ---- (3) invariant under translation -------------------------------------------------------------

@fast(100)
@given(xs=series(), k=ks, c=st.sampled_from([-100.0, -1.5, 0.25, 7.0, 1e3]))
def test_shifting_series_and_threshold_together_leaves_the_decision(xs, k, c):
    x, dt_ps = xs
    stats = series_statistics(x, "x", sample_interval_ps=dt_ps)
    t = _threshold(stats, k)
    d = decide_series(stats, t, settings=RULE)
    assume(_clear_of(d, t))
    event(f"{d.side.value} ({d.basis})")
    shifted_stats = series_statistics(x + c, "x", sample_interval_ps=dt_ps)
    shifted = decide_series(shifted_stats, t + c, settings=RULE)
    assert shifted.side is d.side, (d.describe("x"), shifted.describe("x + c"))
    # the same through the offset of decide_series (how a check compares c/a - 1)
    assert decide_series(stats, t + c, offset=c, settings=RULE).side is d.side


# ---- (4), (5) the Tc bracket and the outcome class do not depend on the grid's order -------------

phases = st.sampled_from(list(Phase) + [None])


@st.composite
def grids(draw):
    temps = draw(st.lists(st.integers(1, 40).map(lambda i: 50.0 * i), min_size=1, max_size=9, unique=True))
    ph = draw(st.lists(phases, min_size=len(temps), max_size=len(temps)))
    order = draw(st.permutations(range(len(temps))))
    return temps, ph, order


@fast(300)
@given(g=grids())
def test_tc_bracket_is_invariant_to_the_order_of_the_grid(g):
    temps, ph, order = g
    assert tc_bracket([temps[i] for i in order], [ph[i] for i in order]) == tc_bracket(temps, ph)


@fast(60)
@given(g=grids(), dup=st.integers(0, 100))
def test_tc_bracket_refuses_a_repeated_temperature(g, dup):
    temps, ph, _ = g
    i = dup % len(temps)
    with pytest.raises(ValueError, match="repeated temperature"):
        tc_bracket([*temps, temps[i]], [*ph, ph[i]])


@fast(300)
@given(g=grids())
def test_outcome_class_is_invariant_to_the_order_of_the_grid(g):
    temps, ph, order = g
    assert classify([temps[i] for i in order], [ph[i] for i in order]) == classify(temps, ph)


# ---- (6) an interval contains its mean and widens with its level ---------------------------------

levels = st.lists(st.floats(0.5, 0.999), min_size=2, max_size=2).map(sorted)


@fast(60)
@given(xs=series(), lv=levels)
def test_interval_contains_its_mean_and_widens_with_the_level(xs, lv):
    stats = series_statistics(xs[0], "x", sample_interval_ps=xs[1])
    assume(math.isfinite(stats.sem))
    (lo1, hi1), (lo2, hi2) = stats.interval(lv[0]), stats.interval(lv[1])
    assert lo1 <= stats.mean <= hi1
    assert lo2 <= lo1 and hi1 <= hi2


@fast(60)
@given(mean=st.floats(-1e3, 1e3), sem=st.floats(0.0, 10.0), lv=levels, dof=st.sampled_from([2.0, 9.0, math.inf]),
       looks=st.integers(1, 6))
def test_decision_interval_contains_the_mean_and_widens_with_level_and_looks(mean, sem, lv, dof, looks):
    def iv(level, n_looks):
        return decide_threshold(mean, sem, 0.0, settings=StatisticsSettings(confidence_level=level),
                                dof=dof, looks=n_looks).interval

    a, b, c = iv(lv[0], looks), iv(lv[1], looks), iv(lv[0], looks + 1)
    assert a.low <= mean <= a.high
    assert b.low <= a.low and a.high <= b.high
    assert c.low <= a.low and a.high <= c.high
    assert a.level <= b.level and c.level >= a.level


# ---- (7) more samples never widen the interval on average ----------------------------------------

@fast(20)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(40, 120), phi=st.sampled_from([0.0, 0.5]))
def test_a_longer_run_of_an_iid_process_gives_a_narrower_interval_on_average(seed, n, phi):
    rng = np.random.default_rng(seed)
    widths = []
    for _ in range(12):
        e = rng.normal(size=4 * n)
        x = np.empty_like(e)
        x[0] = e[0]
        for i in range(1, len(e)):
            x[i] = phi * x[i - 1] + math.sqrt(1.0 - phi**2) * e[i]
        w = []
        for m in (n, 4 * n):  # the same run, stopped at n samples or continued to 4 n
            lo, hi = series_statistics(x[:m], "x", t0=0).interval(RULE.confidence_level)
            w.append(hi - lo)
        widths.append(w)
    short, long = np.mean(widths, axis=0)
    assert long <= short, (short, long)
