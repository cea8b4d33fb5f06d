"""The NPT outcome class of a whole sweep (pto_checks.sweep_class), decided from the phases of the one
phase rule, and the checks derived from it, on constructed sweeps of each class."""

from __future__ import annotations

import pytest

from pto_checks import verdicts
from pto_checks.decisions import Outcome
from pto_checks.phase import Phase
from pto_checks.protocols import PROTOCOLS
from pto_checks.sweep_class import NptClass, classify
from tests.harness.test_decisions import _row, _sweep

T, S, C, M, U = Phase.TETRAGONAL, Phase.SUPERTETRAGONAL, Phase.CUBIC, Phase.MOLTEN, Phase.UNDECIDED
GRID = tuple(range(300, 1400, 100))  # 300 ... 1300 K


@pytest.mark.parametrize(("phases", "cls"), [
    ((T, T, T, C, C), NptClass.TRANSITION),
    ((S, S, S, C, C), NptClass.TRANSITION),  # supertetragonal that turns cubic
    ((T, U, C, U, C), NptClass.TRANSITION),
    ((S, S, S, S, S), NptClass.PERSISTENT_SUPERTETRAGONAL),  # to the top
    ((S, S, S, M, M), NptClass.PERSISTENT_SUPERTETRAGONAL),  # to melting
    ((T, T, M, M, M), NptClass.MOLTEN_OR_UNSTABLE),  # molten before cubic
    ((M, M, M, M, M), NptClass.MOLTEN_OR_UNSTABLE),
    ((T, T, C, C, T), NptClass.REENTRANT),
    ((T, T, T, T, T), NptClass.NEVER_CUBIC),
    ((C, C, C, C, C), NptClass.NEVER_POLAR),
    ((T, T, T, T, U), NptClass.UNDECIDED),
    ((U, U, C, C, C), NptClass.UNDECIDED),
    ((T, T, C, C, M), NptClass.TRANSITION),  # melting above the transition: the melting check's business
])
def test_classes_from_phase_sequences(phases, cls):
    assert classify([300, 500, 700, 900, 1100], phases).cls is cls


def test_classifier_reads_any_order_and_brackets_the_first_transition():
    c = classify([1100, 300, 700, 500, 900], [T, T, C, T, C])
    assert c.cls is NptClass.REENTRANT and c.reentrant_K == 1100 and (c.tc.low, c.tc.high) == (500, 700)


def _npt(tc_K, low_ca=1.06, grid=GRID, melt_K=None, reenter_K=None):
    rows = []
    for t in grid:
        if melt_K is not None and t >= melt_K:
            rows.append(_row(t, 1.0, lind=0.4))
        elif t < tc_K or (reenter_K is not None and t >= reenter_K):
            rows.append(_row(t, low_ca))
        else:
            rows.append(_row(t, 1.0))
    return _sweep(rows)


def _outcomes(sweep):
    return {f.__name__: f(sweep, "PBEsol").outcome for f in
            (verdicts.polar_at_low_temperature, verdicts.cubic_above_tc, verdicts.no_supertetragonal,
             verdicts.tc_vs_experiment)}


def test_supertetragonal_to_cubic_is_a_transition_that_passes():
    s = _npt(700, low_ca=1.22)
    assert verdicts.sweep_class(s).cls is NptClass.TRANSITION
    assert set(_outcomes(s).values()) == {Outcome.PASS}
    v = verdicts.no_supertetragonal(s, "PBE")
    assert "does not persist" in v.message and v.details["npt_class"]["class"] == "transition"


def test_a_transition_160_K_below_experiment_passes_300_K_off_fails():
    v = verdicts.tc_vs_experiment(_npt(600), "PBEsol")  # Tc 600 K: bracket [500, 600] K
    assert v.outcome is Outcome.PASS and (v.interval.low, v.interval.high) == (500, 600), v.message
    v = verdicts.tc_vs_experiment(_npt(1100), "PBEsol")  # 1060 K: [1000, 1100] K
    assert v.outcome is Outcome.FAIL and "outside the band [500, 910] K" in v.message
    fine = (300, 400, 425, 450, 475, 500, 600, 800, 1000, 1300)  # refined near 460 K: [450, 475] K
    assert verdicts.tc_vs_experiment(_npt(470, grid=fine), "PBEsol").outcome is Outcome.FAIL
    v = verdicts.tc_vs_experiment(_npt(460), "PBEsol")  # on the 100 K grid: [400, 500] K, refine
    assert v.outcome is Outcome.INCONCLUSIVE and "between 400 and 500 K" in v.message


def test_a_re_entrant_sweep_fails_for_being_re_entrant():
    s = _npt(1100, reenter_K=1200)  # cubic at 1100 K, polar again from 1200 K
    assert verdicts.sweep_class(s).cls is NptClass.REENTRANT
    v = verdicts.cubic_above_tc(s, "PBE")
    assert v.outcome is Outcome.FAIL and "RE-ENTRANT: cubic at 1100 K, polar again at 1200 K" in v.message
    assert "never reached" not in v.message


def test_molten_before_cubic_says_so():
    s = _npt(2000, melt_K=900)
    assert verdicts.sweep_class(s).cls is NptClass.MOLTEN_OR_UNSTABLE
    for f in (verdicts.cubic_above_tc, verdicts.tc_vs_experiment):
        v = f(s, "PBE")
        assert v.outcome is Outcome.FAIL and "MOLTEN BEFORE CUBIC" in v.message, v.message
    assert verdicts.no_supertetragonal(s, "PBE").outcome is Outcome.PASS


def test_supertetragonal_fails_only_when_it_persists():
    to_melt = _npt(2000, low_ca=1.22, melt_K=1000)
    to_top = _npt(2000, low_ca=1.22)
    for s, why in ((to_melt, "molten before cubic"), (to_top, "up to the top of the sweep (1300 K)")):
        assert verdicts.sweep_class(s).cls is NptClass.PERSISTENT_SUPERTETRAGONAL
        assert verdicts.no_supertetragonal(s, "PBE").outcome is Outcome.FAIL
        assert verdicts.polar_at_low_temperature(s, "PBE").outcome is Outcome.PASS  # supertetragonal is polar
        v = verdicts.tc_vs_experiment(s, "PBE")
        assert v.outcome is Outcome.FAIL and why in v.message, v.message


def _nvt(loss_K, grid=GRID, p0=0.9):
    return _sweep([_row(t, 1.064, p=p0 * (1 - 0.3 * (t - 300) / 1000) if t < loss_K else 0.03) for t in grid], "nvt")


def test_nvt_loss_at_500_K_fails_near_1100_K_passes():
    v = verdicts.polarization_vanishes(_nvt(500), "PBE")  # lost in [400, 500] K
    assert v.outcome is Outcome.FAIL and "LOST FAR BELOW" in v.message, v.message
    v = verdicts.polarization_vanishes(_nvt(1100), "PBE")  # the study's models: [1000, 1100] K
    assert v.outcome is Outcome.PASS, v.message
    assert "Pz need not reach zero" in v.message
    v = verdicts.polarization_vanishes(_nvt(2000), "PBE")  # never lost up to 1300 K
    assert v.outcome is Outcome.FAIL and "never lost" in v.message


def test_nvt_threshold_is_relative_to_the_models_own_polarization():
    """The same sweep in a convention whose P is 0.8 of the other's decides alike: the threshold
    scales with the model's own low-temperature |Pz|."""
    a = verdicts.polarization_vanishes(_nvt(1100, p0=0.9), "PBE")
    b = verdicts.polarization_vanishes(_nvt(1100, p0=0.72), "PBE")
    assert a.outcome is b.outcome is Outcome.PASS
    assert b.tolerance["threshold_C_m2"] == pytest.approx(0.8 * a.tolerance["threshold_C_m2"])


@pytest.mark.parametrize("name", ["paper", "quick"])
def test_protocols_that_decide_reach_1300_K(name):
    assert max(PROTOCOLS[name].md.temperatures_K) >= 1300


def _results_with_class(cls_text="transition", cls="transition", protocol="quick"):
    q = {"value": {"rows": [], "tc": {}, "outcome_class": {"class": cls, "text": cls_text}}, "unit": "",
         "protocol": protocol}
    chk = {"status": "pass", "message": "", "markers": ["npt", "dynamic"]}
    return {"harness": {"version": "x", "created": "now"}, "runs": [],
            "models": {"chgnet": {"checks": {"test_dynamic.py::test_cubic_above_tc[chgnet]": chk},
                                  "quantities": {"md": {"npt_melchionna": q}}, "spec": {}}}}


def test_the_report_matrix_and_the_study_table_show_the_class():
    from pto_checks import report

    data = _results_with_class()
    md = "\n".join(report.matrix_markdown(data))
    assert "| outcome class (whole sweep) | transition |" in md
    html, _ = report.matrix_html(data)
    assert "outcome class (whole sweep)" in html and ">transition<" in html
    table = "\n".join(report.study_table(data))
    assert "| CHGNet (PBE) |" in table and "class: transition" in table
    assert "| DeePMD (UniPero) (PBEsol) | transition, Tc near 600 K" in table and "not run here" in table
