"""MD statistics (pto_checks.statistics): equilibration, inefficiency, standard errors, blocking,
cross-checked against the analytic standard error of AR(1) series; degenerate series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pto_checks import analysis, statistics


def ar1(n: int, phi: float, rng: np.random.Generator, sigma: float = 1.0) -> np.ndarray:
    """x_t = phi x_{t-1} + sigma e_t, started in equilibrium (variance sigma^2 / (1 - phi^2))."""
    e = rng.normal(scale=sigma, size=n)
    x = np.empty(n)
    x[0] = e[0] / math.sqrt(1 - phi**2)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


def analytic_sem(n: int, phi: float, sigma: float = 1.0) -> float:
    """Exact standard error of the mean of n samples of a stationary AR(1) series."""
    var = sigma**2 / (1 - phi**2)
    k = np.arange(1, n)
    return math.sqrt(var / n * (1 + 2 * np.sum((1 - k / n) * phi**k)))


@pytest.mark.parametrize("phi", [0.0, 0.7, 0.95])
def test_standard_error_matches_the_analytic_ar1_value(phi):
    """pymbar's inefficiency (and the blocking estimate, independently) reproduce the exact SEM of
    AR(1) series with known correlation time g = (1 + phi) / (1 - phi), and 95 % intervals cover
    the true mean (0) about 95 % of the time."""
    rng = np.random.default_rng(7)
    n, reps = 4000, 150
    exact = analytic_sem(n, phi)
    sems, blk, covered = [], [], 0
    for _ in range(reps):
        s = statistics.series_statistics(ar1(n, phi, rng), "x", t0=0)
        sems.append(s.sem)
        blk.append(s.sem_blocking)
        covered += abs(s.mean) <= 1.96 * s.sem
        assert s.n_eff == pytest.approx(n / s.g)
    assert np.mean(sems) == pytest.approx(exact, rel=0.12)
    assert np.nanmean(blk) == pytest.approx(exact, rel=0.2)
    assert np.mean(~np.isnan(blk)) > 0.9  # the plateau is found for long series
    assert 0.88 <= covered / reps <= 0.99
    g = (1 + phi) / (1 - phi)
    assert statistics.inefficiency(ar1(20000, phi, rng)) == pytest.approx(g, rel=0.25)


def test_equilibration_start_skips_an_initial_transient():
    rng = np.random.default_rng(3)
    transient = np.linspace(10.0, 0.0, 300) + ar1(300, 0.8, rng)
    x = np.concatenate([transient, ar1(4000, 0.8, rng)])
    s = statistics.series_statistics(x, "x")
    assert 150 <= s.t0 <= 600
    assert abs(s.mean) < 4 * s.sem  # the transient no longer biases the mean
    naive = x.mean()
    assert naive > s.mean + 2 * s.sem  # it would have


def test_short_and_degenerate_series_are_explicit():
    empty = statistics.series_statistics([], "x")
    assert empty.note == "no samples" and math.isnan(empty.mean)
    const = statistics.series_statistics(np.ones(50), "order")
    assert const.note == "constant" and const.sem == 0.0 and const.n_eff == 50 and const.mean == 1.0
    short = statistics.series_statistics([1.0, 2.0, 3.0], "x")
    assert short.note.startswith("too short") and math.isnan(short.sem) and short.mean == 2.0
    bad = statistics.series_statistics([1.0, np.nan] * 10, "x")
    assert bad.note == "non-finite samples" and math.isnan(bad.sem)


def test_blocking_finds_no_plateau_in_a_too_short_correlated_run():
    rng = np.random.default_rng(5)
    short = statistics.blocking(ar1(64, 0.995, rng))
    assert not short.plateau and math.isnan(short.sem)
    long = statistics.blocking(ar1(20000, 0.5, rng))
    assert long.plateau and long.sem == pytest.approx(analytic_sem(20000, 0.5), rel=0.25)


def test_run_statistics_share_one_window():
    rng = np.random.default_rng(11)
    drift = np.concatenate([np.linspace(2, 0, 200), np.zeros(1800)]) + ar1(2000, 0.5, rng)
    flat = ar1(2000, 0.5, rng)
    rs = statistics.run_statistics({"e": drift, "y": flat}, {"e": "eV"}, 0.02, ("e",))
    assert rs.t0 == rs["y"].t0 == rs["e"].t0 > 50  # the ramp (200 samples) is mostly skipped
    assert rs["e"].unit == "eV" and rs.t0_ps == pytest.approx(rs.t0 * 0.02)
    assert rs["y"].n_eff_per_ps == pytest.approx(1 / (rs["y"].g * 0.02))
    with pytest.raises(ValueError, match="same length"):
        statistics.run_statistics({"a": [1.0, 2.0], "b": [1.0]}, {}, 1.0, ())


def test_norm_statistics_propagates_the_error():
    mk = statistics.SeriesStats
    comps = [mk("Px", "C/m^2", 100, 0, 2.0, 50.0, 0.0, 0.1, 0.01, 0.02, True, 0.01),
             mk("Py", "C/m^2", 100, 0, 2.0, 50.0, 0.0, 0.1, 0.01, 0.02, True, 0.01),
             mk("Pz", "C/m^2", 100, 0, 4.0, 25.0, 0.6, 0.1, 0.02, 0.02, True, 0.02)]
    p = statistics.norm_statistics(comps)
    assert p.mean == pytest.approx(0.6) and p.sem == pytest.approx(0.02) and p.n_eff == 25.0


def _samples(n=1500, seed=0, ca=1.04, pz=0.6):
    rng = np.random.default_rng(seed)
    a = 3.9 + 0.002 * ar1(n, 0.9, rng)
    c = 3.9 * ca + 0.002 * ar1(n, 0.9, rng)
    return [{"step": 10 * i, "time_ps": 0.02 * i, "T_K": 600 + rng.normal(), "epot_eV": -8 + 0.01 * rng.normal(),
             "a": a[i], "b": a[i], "c": c[i], "Px": 0.01 * rng.normal(), "Py": 0.01 * rng.normal(),
             "Pz": pz + 0.02 * rng.normal(), "P_local_abs": 0.6, "lindemann": 0.08, "order": 1.0,
             "volume_per_fu": 60.0} for i in range(n)]


def test_summarize_run_adds_statistics_and_keeps_the_old_keys(tmp_path):
    import csv

    samples = _samples()
    row = analysis.summarize_run(samples, None, 600.0, 0.5)
    for key in ("a", "a_err", "c", "c_over_a", "c_over_a_err", "P", "P_abs", "Pz", "Pz_err", "lindemann",
                "order", "n_samples", "long_axis", "c_over_a_frames"):
        assert key in row, key
    st = row["stats"]["series"]
    assert set(st) >= {"a", "c", "c_over_a", "a_x", "b_y", "c_z", "Px", "Py", "Pz", "P_abs", "P_local_abs",
                       "lindemann", "order", "T_measured", "epot_eV"}
    assert row["c_over_a_mean"] == pytest.approx(1.04, abs=3e-3) and 0 < row["c_over_a_sem"] < 1e-3
    assert row["P_abs_mean"] == pytest.approx(0.6, abs=0.01)
    assert st["order"]["note"] == "constant"
    assert st["c_over_a"]["sample_interval_ps"] == pytest.approx(0.02)
    assert row["stats"]["series"]["a"]["unit"] == "Angstrom"
    # recomputed on reading: the samples file as the MD stage writes it gives the same statistics
    with (tmp_path / "samples.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(samples[0]))
        w.writeheader()
        w.writerows(samples)
    again = analysis.summarize_run(analysis.read_samples(tmp_path / "samples.csv"), None, 600.0, 0.5)
    assert again["c_over_a_sem"] == pytest.approx(row["c_over_a_sem"], rel=1e-9)
    assert again["stats"]["t0"] == row["stats"]["t0"]


def test_a_window_holding_a_crest_is_not_stationary_and_names_the_window_that_decides():
    """A strong slow oscillation seen over 2/3 of its period (a crest) trips the slow-mode guard,
    whose fast-noise level is measured after the slope and crest are removed; with the series
    itself as the reference (the old guard) the crest inflates its own reference and hides.  White
    noise of the same length passes the guard and is decided."""
    from pto_checks.decisions import Side, StatisticsSettings, decide_series

    rng = np.random.default_rng(11)
    n, dt = 600, 0.005  # 3 ps
    t = np.arange(n) * dt
    crest = 0.5 * np.cos(2 * np.pi * (t - 1.5) / 4.5) + 0.7 * rng.standard_normal(n)
    s = statistics.series_statistics(crest, "q", "", 0, dt)
    assert s.n_eff >= 10  # enough samples: the guard, not their number, keeps it undecided
    assert statistics.slow_mode_ratio(crest) > statistics.SLOW_POWER_LIMIT
    d = crest - crest.mean()
    power_bin1 = abs(np.fft.rfft(d)[1]) ** 2 / n
    assert power_bin1 / (n * s.sem_acf**2) <= 8.0  # against the series' own level, the periodogram misses it
    assert not s.halves_agree
    settings = StatisticsSettings(0.95, 10.0, False, 0.5)
    d = decide_series(s, 0.0, settings=settings, temperature_K=300)
    assert d.side is Side.UNDECIDED
    assert "a window of at least 6.0 ps" in d.reason and "needs at least about 3.0 more ps at 300 K" in d.needs()

    flat = 0.5 + 0.7 * rng.standard_normal(n)
    f = statistics.series_statistics(flat, "q", "", 0, dt)
    assert statistics.slow_mode_ratio(flat) <= statistics.SLOW_POWER_LIMIT and f.halves_agree
    assert decide_series(f, 0.0, settings=settings).side is Side.ABOVE


def test_the_slow_mode_guard_holds_for_a_replica_set():
    """A replica set is refused when its replicas' mean slow-mode ratio exceeds the limit: one
    strong crest is enough; two flat windows are not refused."""
    rng = np.random.default_rng(12)
    n, dt = 600, 0.005
    t = np.arange(n) * dt
    flat = [statistics.series_statistics(0.5 + 0.7 * rng.standard_normal(n), "q", "", 0, dt) for _ in range(2)]
    crest = statistics.series_statistics(0.5 * np.cos(2 * np.pi * (t - 1.5) / 4.5) + 0.7 * rng.standard_normal(n),
                                         "q", "", 0, dt)
    assert all(f.halves_agree for f in flat) and not crest.halves_agree
    assert statistics.combine_replicas(flat).halves_agree
    both = statistics.combine_replicas([*flat, crest])
    assert not both.halves_agree and both.slow_ratio == pytest.approx(np.mean([f.slow_ratio for f in [*flat, crest]]))


def test_the_equilibrated_start_is_the_earliest_near_the_best():
    """On a stationary series the start stays near 0 (pymbar's argmax lands anywhere on its flat
    n_eff curve); a real transient is still skipped (test above)."""
    rng = np.random.default_rng(13)
    starts = [statistics.equilibration_start(rng.standard_normal(150)) for _ in range(60)]
    argmax = [statistics.equilibration_start(rng.standard_normal(150), tolerance=0.0) for _ in range(60)]
    assert np.mean(starts) < np.mean(argmax)
    assert np.mean(np.array(starts) > 15) <= 0.05


def test_a_window_on_a_crest_is_not_decided_above_but_may_be_decided_below():
    """The one-sided crest rule: a window whose middle stands above its ends (a crest beyond
    CREST_Z_LIMIT standard deviations of its fast noise) may sit on the top of an oscillation it
    does not span, so its mean is not trusted to be above a threshold; the same window far above
    a lower threshold's opposite side (a "below" question) is not affected, nor is a flat window."""
    from pto_checks.decisions import Side, StatisticsSettings, decide_series

    rng = np.random.default_rng(26)  # a draw where the crest is too weak for the two-sided guard
    n, dt = 400, 0.01
    u = np.linspace(-1, 1, n)
    crest = 0.2 + 0.05 * (1 - u**2) + 0.15 * rng.standard_normal(n)
    s = statistics.series_statistics(crest, "q", "", 0, dt)
    assert s.crest_z < -statistics.CREST_Z_LIMIT and s.halves_agree  # too weak for the guard, a crest for the rule
    settings = StatisticsSettings(0.95, 10.0, False, 0.5)
    above = decide_series(s, 0.1, settings=settings, temperature_K=300)
    assert above.side is Side.UNDECIDED and "sits on a crest" in above.reason
    assert decide_series(s, 0.5, settings=settings).side is Side.BELOW
    flipped = decide_series(s, -0.1, scale=-1.0, settings=settings)  # -q below -0.1: a trough of -q
    assert flipped.side is Side.UNDECIDED and "trough" in flipped.reason
    flat = statistics.series_statistics(0.2 + 0.15 * np.random.default_rng(1).standard_normal(n), "q", "", 0, dt)
    assert abs(flat.crest_z) < statistics.CREST_Z_LIMIT and flat.halves_agree
    assert decide_series(flat, 0.1, settings=settings).side is Side.ABOVE


def test_series_statistics_read_back_from_json_carry_a_drift_bound():
    """A row's statistics read back from results.json (``SeriesStats(**d)``, as ``pto-checks analyze``
    and the replica combination do) hold a DriftBound, not a mapping, so a window whose slow mode
    sends it to the drift rule can still be decided."""
    import json

    from pto_checks.drift import DriftBound

    rng = np.random.default_rng(2)
    s = statistics.series_statistics(np.sin(np.linspace(0, 2, 400)) + 0.05 * rng.standard_normal(400), "q", "", 0, 0.01)
    back = statistics.SeriesStats(**json.loads(json.dumps(s.to_dict())))
    assert isinstance(back.drift, DriftBound) and back.drift == s.drift
