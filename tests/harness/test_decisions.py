"""Three outcomes: the threshold decision rule, the Verdict's outcome, and every dynamic verdict
deciding from confidence intervals (pass, fail and inconclusive each shown on a table)."""

from __future__ import annotations

import math

import pytest

from pto_checks import analysis, verdicts
from pto_checks.decisions import (
    Outcome,
    Side,
    StatisticsSettings,
    combine,
    decide_threshold,
    statistics_settings,
)
from pto_checks.protocols import PROTOCOLS, get_protocol
from pto_checks.statistics import SeriesStats
from pto_checks.verdicts import Verdict

S = StatisticsSettings(0.95, 10, True, 0.5)


def test_settings_come_from_reference_data():
    s = statistics_settings()
    assert s.confidence_level == 0.95 and s.min_n_eff == 10
    assert s.z() == pytest.approx(1.95996, abs=1e-4)
    assert s.z(looks=5) == pytest.approx(2.5758, abs=1e-3)  # alpha 0.05 / 5 per look


@pytest.mark.parametrize(("mean", "side"), [(0.02, Side.ABOVE), (0.0, Side.BELOW), (0.011, Side.UNDECIDED)])
def test_above_below_undecided(mean, side):
    d = decide_threshold(mean, 0.002, 0.01, n_eff=50, n_eff_per_ps=2.0, settings=S, temperature_K=900)
    assert d.side is side
    assert d.interval.low == pytest.approx(mean - 1.96 * 0.002, abs=1e-5)
    assert d.outcome(Side.BELOW) is {Side.ABOVE: Outcome.FAIL, Side.BELOW: Outcome.PASS,
                                     Side.UNDECIDED: Outcome.INCONCLUSIVE}[side]


def test_what_would_decide_it():
    # m - thr = 0.002 needs sem 0.002/1.96: (0.002/0.00102)^2 = 3.84 x the 50 independent samples
    d = decide_threshold(0.012, 0.002, 0.01, n_eff=50, n_eff_per_ps=2.0, settings=S, temperature_K=900)
    assert d.side is Side.UNDECIDED
    assert d.extra_ps == pytest.approx(50 * (1.96**2 - 1) / 2.0, rel=1e-3)
    assert "needs about 72 more ps at 900 K" in d.needs()
    # check the estimate: with that many more samples the interval clears the threshold
    n_new = 50 + d.extra_ps * 2.0
    assert 0.012 - S.z() * 0.002 * math.sqrt(50 / n_new) == pytest.approx(0.01)
    on = decide_threshold(0.01, 0.002, 0.01, n_eff=50, n_eff_per_ps=2.0, settings=S)
    assert math.isinf(on.extra_ps) and "no run length decides it" in on.needs()


def test_too_short_not_equilibrated_or_no_plateau_is_undecided_whatever_the_mean():
    far = dict(mean=0.5, sem=0.001, threshold=0.01, settings=S)
    short = decide_threshold(**far, n_eff=4, n_eff_per_ps=1.0, temperature_K=300)
    assert short.side is Side.UNDECIDED and "n_eff 4.0 < 10" in short.reason
    assert short.extra_ps == pytest.approx(6.0) and "needs about 6.0 more ps at 300 K" in short.needs()
    assert decide_threshold(**far, n_eff=100, equilibrated=False).side is Side.UNDECIDED
    assert decide_threshold(**far, n_eff=100, plateau=False).side is Side.UNDECIDED
    assert decide_threshold(0.5, math.nan, 0.01, settings=S).side is Side.UNDECIDED
    assert decide_threshold(**far, n_eff=100).side is Side.ABOVE


def test_combine():
    assert combine([Outcome.PASS, Outcome.PASS]) is Outcome.PASS
    assert combine([Outcome.PASS, Outcome.INCONCLUSIVE]) is Outcome.INCONCLUSIVE
    assert combine([Outcome.INCONCLUSIVE, Outcome.FAIL]) is Outcome.FAIL


def test_verdict_keeps_passed_for_existing_callers():
    assert Verdict("x", True, "m").outcome is Outcome.PASS
    assert Verdict("x", False, "m").outcome is Outcome.FAIL
    v = Verdict("x", True, "m", outcome=Outcome.INCONCLUSIVE)
    assert not v.passed and v.inconclusive
    d = v.to_dict()
    assert d["status"] == d["outcome"] == "inconclusive" and d["passed"] is False and d["interval"] is None
    v.set_outcome(Outcome.PASS)
    assert v.passed


# --- dynamic verdicts on rows with statistics -----------------------------------------------------

def _st(name, mean, sem, n_eff=100.0, unit=""):
    # n = 2000 samples of 0.02 ps, t0 100: equilibrated; g from n_eff
    return SeriesStats(name, unit, 2000, 100, 1900 / n_eff, n_eff, mean, sem * math.sqrt(n_eff), sem, 0.02,
                       True, sem).to_dict()


def _row(t, ca, ca_sem=1e-4, p=0.0, p_sem=0.005, lind=0.08, lind_sem=0.001, order=1.0, failure=None, n_eff=100.0,
         align=None, align_sem=0.01):
    # per-frame polar order (4^3 cells: disordered baseline 0.115, threshold 0.56): polar where c/a says so
    align = (0.9 if ca - 1 >= 0.01 else 0.2) if align is None else align
    series = {"c_over_a": _st("c_over_a", ca, ca_sem, n_eff), "P_abs": _st("P_abs", abs(p), p_sem, n_eff, "C/m^2"),
              "Pz": _st("Pz", p, p_sem, n_eff, "C/m^2"),
              "Pz_frame_abs": _st("Pz_frame_abs", abs(p), p_sem, n_eff, "C/m^2"),
              "lindemann": _st("lindemann", lind, lind_sem, n_eff),
              "order": _st("order", order, 0.0, n_eff), "P_alignment": _st("P_alignment", align, align_sem, n_eff),
              "P_frame_abs": _st("P_frame_abs", 0.6 if align > 0.5 else 0.05, 0.01, n_eff, "C/m^2"),
              "P_binder": _st("P_binder", 0.95 if align > 0.5 else 0.0, 0.05, n_eff),
              "Pz_binder": _st("Pz_binder", 0.95 if abs(p) > 0.1 else 0.0, 0.05, n_eff)}
    return {"T_K": t, "a": 3.9, "c": 3.9 * ca, "c_over_a": ca, "P_abs": abs(p), "Pz": p, "lindemann": lind,
            "order": order, "failure": failure, "n_samples": 1000, "stats": {"t0": 100, "series": series},
            "task": {"supercell": 4}}


def _sweep(rows, ensemble="npt", protocol="paper"):
    from pto_checks import phase

    rows = phase.classify_rows(rows, ensemble)
    return {"rows": rows, "tc": phase.sweep_tc(rows, ensemble), "ensemble": ensemble, "integrator": "melchionna",
            "protocol": PROTOCOLS[protocol], "table": analysis.format_table(rows)}


NPT_CHECKS = (verdicts.no_melting_or_instability, verdicts.polar_at_low_temperature, verdicts.cubic_above_tc,
              verdicts.no_supertetragonal, verdicts.tc_vs_experiment)


def test_sound_transition_with_small_errors_passes():
    s = _sweep([_row(t, ca) for t, ca in [(300, 1.06), (500, 1.05), (700, 1.03), (800, 1.002), (1000, 1.0)]])
    for fn in NPT_CHECKS:
        v = fn(s, "PBEsol")
        assert v.outcome is Outcome.PASS, v.message
    tc = verdicts.tc_vs_experiment(s, "PBEsol")
    assert (tc.interval.low, tc.interval.high) == (700, 800) and tc.details["tc_bracket"]["tc"] == 750


def test_a_run_too_noisy_to_decide_is_inconclusive_not_fail():
    """The smoke-protocol situation: 0.3 ps cannot decide c/a - 1 vs 0.01 at the top."""
    rows = [_row(300, 1.06), _row(1000, 1.012, ca_sem=0.006, n_eff=12, align=0.56, align_sem=0.05)]
    v = verdicts.cubic_above_tc(_sweep(rows, protocol="smoke"), "PBE")
    assert v.outcome is Outcome.INCONCLUSIVE and not v.passed
    assert v.message.startswith("INCONCLUSIVE") and "more ps at 1000 K" in v.message
    assert "REDUCED protocol 'smoke'" in v.message and "qualitative only" not in v.message
    assert v.interval is not None
    assert v.to_dict()["status"] == "inconclusive" and v.details["decisions"]
    # too few independent samples: inconclusive however far the mean is
    rows = [_row(300, 1.06), _row(1000, 1.05, n_eff=3)]
    assert verdicts.cubic_above_tc(_sweep(rows), "PBE").outcome is Outcome.INCONCLUSIVE


@pytest.mark.parametrize(("rows", "check"), [
    ([_row(300, 1.06), _row(600, 1.0), _row(1000, 1.03)], verdicts.cubic_above_tc),  # re-entrant
    ([_row(300, 1.06), _row(1000, 1.05)], verdicts.cubic_above_tc),  # never cubic
    ([_row(300, 1.06), _row(400, 1.0), _row(1000, 1.0)], verdicts.tc_vs_experiment),  # Tc in [300, 400]
    ([_row(300, 1.06), _row(1000, 1.05)], verdicts.tc_vs_experiment),  # no transition
    ([_row(300, 1.25), _row(1000, 1.0)], verdicts.no_supertetragonal),
    ([_row(300, 1.25), _row(1000, 1.0)], verdicts.polar_at_low_temperature),  # supertetragonal, not tetragonal
    ([_row(300, 1.0), _row(1000, 1.0)], verdicts.polar_at_low_temperature),
    ([_row(300, 1.06), _row(1000, 1.0, lind=0.4)], verdicts.no_melting_or_instability),
    ([_row(300, 1.06), _row(1000, 1.0, failure={"step": 5, "reason": "non-finite energy or forces"})],
     verdicts.no_melting_or_instability),
])
def test_decided_wrong_tables_fail(rows, check):
    v = check(_sweep(rows), "PBE")
    assert v.outcome is Outcome.FAIL, v.message


def test_tc_bracket_partly_outside_the_tolerance_is_inconclusive():
    # decided polar at 600, decided cubic at 800, 700 undecided: Tc in [600, 800], window [610, 910]
    rows = [_row(300, 1.06), _row(600, 1.04), _row(700, 1.011, ca_sem=0.004, align=0.56, align_sem=0.05),
            _row(800, 1.0), _row(1000, 1.0)]
    v = verdicts.tc_vs_experiment(_sweep(rows), "PBE")
    assert v.outcome is Outcome.INCONCLUSIVE and (v.interval.low, v.interval.high) == (600, 800)
    assert "between 600 and 800 K" in v.message and "700 K: UNDECIDED" in v.message


def test_tc_bracket_states():
    b = verdicts.tc_bracket
    assert b([300, 400, 500], ["tetragonal", None, "cubic"])["status"] == "bracketed"
    assert b([300, 400], ["cubic", "cubic"])["status"] == "never_polar"
    assert b([300, 400], [None, "cubic"])["status"] == "undecided"
    assert b([300, 400], ["tetragonal", "tetragonal"])["status"] == "never_cubic"
    assert b([300, 400, 500], ["tetragonal", None, None])["status"] == "unbounded"


def test_nvt_polarization_verdicts_with_intervals():
    ok = _sweep([_row(300, 1.064, p=0.7), _row(1000, 1.064, p=0.02)], "nvt")
    assert verdicts.polarization_vanishes(ok, "PBE").outcome is Outcome.PASS
    assert verdicts.polar_at_low_temperature(ok, "PBE").outcome is Outcome.PASS
    stuck = _sweep([_row(300, 1.064, p=0.7), _row(1000, 1.064, p=-0.5)], "nvt")
    assert verdicts.polarization_vanishes(stuck, "PBE").outcome is Outcome.FAIL
    edge = _sweep([_row(300, 1.064, p=0.7), _row(1000, 1.064, p=0.14, p_sem=0.03)], "nvt")
    v = verdicts.polarization_vanishes(edge, "PBE")
    assert v.outcome is Outcome.INCONCLUSIVE and "more ps at 1000 K" in v.message
    weak = _sweep([_row(300, 1.064, p=0.16, p_sem=0.02), _row(1000, 1.064, p=0.0)], "nvt")
    assert verdicts.polar_at_low_temperature(weak, "PBE").outcome is Outcome.INCONCLUSIVE


def test_undecided_melting_is_inconclusive():
    s = _sweep([_row(300, 1.06), _row(1000, 1.0, lind=0.245, lind_sem=0.01)])
    v = verdicts.no_melting_or_instability(s, "PBE")
    assert v.outcome is Outcome.INCONCLUSIVE and "undecided melting at 1000 K" in v.message


def test_rows_without_statistics_are_undecided_not_judged_on_their_means():
    """One phase rule: a row that carries no statistics (an old cache) is undecided everywhere
    (row phase, Tc, verdicts), never cubic or tetragonal by its means."""
    rows = [_row(300, 1.06), _row(1000, 1.0)]
    for r in rows:
        del r["stats"]
    s = _sweep(rows, protocol="smoke")
    assert [r["phase"] for r in s["rows"]] == ["undecided", "undecided"]
    assert s["tc"]["tc"] is None and s["tc"]["status"] == "undecided"
    assert verdicts.cubic_above_tc(s, "PBE").outcome is Outcome.INCONCLUSIVE
    assert verdicts.polar_at_low_temperature(s, "PBE").outcome is Outcome.INCONCLUSIVE
    assert get_protocol("smoke").reduced


def test_tc_bracket_does_not_depend_on_the_order_of_the_grid():
    from pto_checks.phase import tc_bracket

    br = tc_bracket([900, 300, 600], ["cubic", "tetragonal", "tetragonal"])
    assert br.status == "bracketed" and (br.low, br.high, br.tc) == (600, 900, 750)
    with pytest.raises(ValueError, match="repeated temperature"):
        tc_bracket([300, 300, 600], ["tetragonal", "tetragonal", "cubic"])


def test_a_liquid_still_drifting_past_the_melting_limit_fails():
    """A liquid's Lindemann ratio never stops growing ("not equilibrated"); once its whole interval
    is past the limit the run is molten (fail), not inconclusive.  A crystal still drifting below
    the limit stays inconclusive."""
    def drifting(row, lind):
        row["stats"]["series"]["lindemann"] = SeriesStats("lindemann", "", 2000, 1500, 19.0, 26.3, lind,
                                                          0.05, 0.01, 0.02, True, 0.01).to_dict()
        return row
    molten = _sweep([_row(300, 1.06), drifting(_row(1000, 1.0), 0.66)])
    v = verdicts.no_melting_or_instability(molten, "PBE")
    assert v.outcome is Outcome.FAIL and "MOLTEN at 1000 K" in v.message
    warm = _sweep([_row(300, 1.06), drifting(_row(1000, 1.0), 0.12)])
    assert verdicts.no_melting_or_instability(warm, "PBE").outcome is Outcome.INCONCLUSIVE
