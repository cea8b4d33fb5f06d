"""The phonon rule: every branch at every q judged, tolerance only for acoustic modes at Gamma,
supercell escalation only for interpolated dips (pto_checks.phonons.decide_stability)."""

from __future__ import annotations

import numpy as np
import pytest

from pto_checks import phonons, structures, verdicts
from pto_checks.decisions import Outcome
from pto_checks.models.synthetic import make
from pto_checks.reference import tolerance


def _spectrum(supercell, dips):
    """A 15-branch spectrum on a small path + mesh with ``dips`` {q: frequency of branch 0}."""
    grid = phonons.commensurate_grid(supercell)
    band_q = np.array([[0, 0, 0], [0, 0.01, 0], [0, 0.05, 0], [0, 0.12, 0], [0, 0.125, 0], [0, 0.25, 0],
                       [0, 0.5, 0]], dtype=float)
    mesh_q = np.array([[0.125, 0.125, 0], [0.5, 0.5, 0.5], [-0.05, 0, 0], [0, 0, 0.15], [0.34, 0.34, 0]],
                      dtype=float)

    def freqs(q):
        f = np.tile(np.linspace(0.5, 10, 15), (len(q), 1))
        for i, qq in enumerate(q):
            if np.allclose(qq, 0):
                f[i, :3] = [-0.005, 0.0, 0.004]  # acoustic at Gamma: round-off, within -0.01 THz
            for dq, val in dips.items():
                if np.allclose(qq, dq):
                    f[i, 0] = val
        return f

    return phonons.PhononResult(band_q, freqs(band_q), np.arange(float(len(band_q))), [0.0, len(band_q) - 1.0],
                                ["G", "X"], mesh_q,
                                freqs(mesh_q), 1, supercell, grid, freqs(grid))


def _decide(by_supercell):
    tol = tolerance("phonon")
    return phonons.decide_stability(lambda sc: _spectrum(sc, by_supercell[sc[0]]),
                                    [(2, 2, 2), (3, 3, 3), (4, 4, 4)], tol["acoustic_gamma_thz"],
                                    tol["imaginary_threshold_thz"], tol["dip_match_grid_spacings"])[0]


def test_acoustic_round_off_at_gamma_passes_without_escalation():
    d = _decide({2: {}})
    assert d.stable and d.decided_by == (2, 2, 2) and len(d.steps) == 1


def test_interpolated_dip_that_vanishes_in_a_larger_supercell_passes():
    """CHGNet-like: a dip at (0, 0.05, 0) in 2x2x2 and 3x3x3, gone in 4x4x4."""
    d = _decide({2: {(0, 0.05, 0): -0.17}, 3: {(0, 0.05, 0): -0.9}, 4: {}})
    assert d.stable and d.decided_by == (4, 4, 4) and len(d.steps) == 3
    assert not d.steps[0].worst.exact and d.steps[0].worst.f_thz == pytest.approx(-0.17)


@pytest.mark.parametrize("f", [-0.02, -0.3])
def test_weak_instability_near_gamma_that_persists_fails(f):
    """ORB-like: an acoustic-branch dip near (not at) Gamma, in every supercell: it is judged,
    not excluded, and fails after escalation with the largest supercell named."""
    d = _decide({2: {(0.125, 0.125, 0): f}, 3: {(0.125, 0.125, 0): f}, 4: {(0.125, 0.125, 0): f}})
    assert not d.stable and d.decided_by == (4, 4, 4)
    assert d.mode.branch == 0 and not d.mode.exact and d.mode.f_thz == pytest.approx(f)
    assert "persists" in d.reason


def test_dip_that_persists_at_equivalent_or_nearby_q_fails():
    """The same dip seen at P4mm-equivalent q ((0, 0.05, 0) ~ (-0.05, 0, 0)) and moved by less than
    the 4x4x4 grid spacing (to (0, 0.125, 0)) is one instability: confirmed, fails."""
    d = _decide({2: {(0, 0.05, 0): -0.2}, 3: {(-0.05, 0, 0): -0.3}, 4: {(0, 0.125, 0): -0.1}})
    assert d.outcome is Outcome.FAIL and not d.stable and d.decided_by == (4, 4, 4)
    assert d.mode.q == (0.0, 0.125, 0.0) and not d.mode.exact and "persists" in d.reason


def test_dip_that_moves_between_supercells_is_inconclusive_not_a_pass():
    """SevenNet-like: interpolated dips at (0, 0.05, 0), (0, 0, 0.15), (0.34, 0.34, 0) in 2x2x2,
    3x3x3, 4x4x4, every exact q real: not confirmed, not refuted -> inconclusive, naming 5x5x5."""
    d = _decide({2: {(0, 0.05, 0): -0.09}, 3: {(0, 0, 0.15): -1.76}, 4: {(0.34, 0.34, 0): -0.84}})
    assert d.outcome is Outcome.INCONCLUSIVE and not d.stable and d.decided_by == (4, 4, 4)
    assert d.mode.q == (0.34, 0.34, 0.0) and d.mode.f_thz == pytest.approx(-0.84)
    assert "5x5x5" in d.reason and "every exact q" in d.reason
    v = verdicts.no_imaginary_modes({"decision": d.to_dict(), "symprec": 1e-3}, "PBE")
    assert v.outcome is Outcome.INCONCLUSIVE and not v.passed and "INCONCLUSIVE" in v.message


def test_dip_that_moves_but_an_exact_q_is_imaginary_fails():
    """A moving interpolated dip never hides an exact imaginary frequency: exact fails first."""
    d = _decide({2: {(0, 0.05, 0): -0.09}, 3: {(0, 0, 0.15): -1.76, (0, 1 / 3, 0): -0.2}})
    assert d.outcome is Outcome.FAIL and d.decided_by == (3, 3, 3) and d.mode.exact


def test_exact_instability_fails_without_escalation():
    d = _decide({2: {(0, 0.5, 0): -0.4, (0, 0.05, 0): -0.1}})
    assert not d.stable and d.decided_by == (2, 2, 2) and len(d.steps) == 1
    assert d.mode.exact and d.mode.f_thz == pytest.approx(-0.4)


def test_optic_mode_at_gamma_has_no_tolerance():
    """Only the three lowest modes at Gamma get -0.01 THz; a fourth below zero fails, exact."""
    res = _spectrum((2, 2, 2), {})
    res.band_freq[0, :4] = [-0.005, 0.0, 0.004, -0.05]
    step = phonons.judge(res, -0.01, 0.0)
    assert step.worst_exact is not None and step.worst_exact.f_thz == pytest.approx(-0.05)
    assert step.worst_exact.q == (0.0, 0.0, 0.0)


def test_commensurate_points():
    assert phonons.is_commensurate(np.array([[0, 0.5, 0], [0.25, 0, 0], [1 / 3, 0, 0]]), (2, 2, 2)).tolist() == [
        True, False, False]
    assert phonons.is_commensurate(np.array([[1 / 3, 2 / 3, 0]]), (3, 3, 3)).all()
    assert len(phonons.commensurate_grid((3, 3, 3))) == 27


def test_zone_unstable_model_has_exact_instabilities_across_the_zone():
    res = phonons.compute_phonons(structures.tetragonal(), make("zone_unstable"), supercell=(2, 2, 2))
    step = phonons.judge(res)
    assert step.worst_exact is not None and step.worst_exact.f_thz < -0.5
    q, f = res.all_q_and_freq()
    assert (np.sort(f, axis=1)[:, 0] < 0).mean() > 0.3  # a third of all q-points, not one spot


def test_symmetrize_gives_an_exact_tetragonal_cell():
    from pto_checks import relax

    at = structures.tetragonal()
    at.set_cell(at.cell.array + 2e-4 * np.array([[0, 1, 0], [1, 0, 0.5], [0, 0, 0]]), scale_atoms=True)
    assert relax.spacegroup(at, 1e-5)[1] != 99
    out = relax.symmetrize(at, 1e-3)
    assert relax.spacegroup(out, 1e-8) == ("P4mm", 99)
    c = out.cell.array
    assert np.count_nonzero(c - np.diag(np.diag(c))) == 0 and c[0, 0] == c[1, 1]


def _decide_with_elastic(by_supercell, stable):
    from pto_checks import elastic

    tol = tolerance("phonon")
    c = np.diag([200.0, 200.0, 150.0, 50.0, 50.0, 60.0 if stable else -5.0])
    c[0, 1] = c[1, 0] = 100.0
    calls = []

    def lw():
        calls.append(1)
        return elastic.ElasticResult(c, elastic.born_violations_tetragonal(c), 0.005)

    d = phonons.decide_stability(lambda sc: _spectrum(sc, by_supercell[sc[0]]), [(2, 2, 2), (3, 3, 3), (4, 4, 4)],
                                 tol["acoustic_gamma_thz"], tol["imaginary_threshold_thz"],
                                 tol["dip_match_grid_spacings"], lw)[0]
    return d, len(calls)


SEVENNET_LIKE = {2: {(0, 0.05, 0): -0.09}, 3: {(0, 0, 0.15): -1.76}, 4: {(0.34, 0.34, 0): -0.84}}


def test_moving_dips_near_gamma_fail_when_the_long_wavelength_limit_is_unstable():
    """Dips near Gamma that move between supercells, and C66 < 0: the exact q -> 0 probe confirms an
    elastic instability -> fail."""
    d, n = _decide_with_elastic(SEVENNET_LIKE, stable=False)
    assert n == 1 and d.outcome is Outcome.FAIL and "C66 > 0" in d.reason
    assert d.mode.q == (0.0, 0.0, 0.15) and d.long_wavelength["stable"] is False


def test_moving_dips_with_a_stable_long_wavelength_limit_stay_inconclusive():
    d, n = _decide_with_elastic(SEVENNET_LIKE, stable=True)
    assert n == 1 and d.outcome is Outcome.INCONCLUSIVE and "no elastic instability" in d.reason


def test_long_wavelength_probe_not_computed_when_not_needed():
    _, n = _decide_with_elastic({2: {(0, 0.05, 0): -0.17}, 3: {(0, 0.05, 0): -0.9}, 4: {}}, stable=False)
    assert n == 0  # decided (pass) by 4x4x4 before any probe
    _, n = _decide_with_elastic({2: {(0.34, 0.34, 0): -0.5}, 3: {(0.34, 0.34, 0): -0.5},
                                 4: {(0.34, 0.34, 0): -0.5}}, stable=False)
    assert n == 0  # no dip near Gamma


def test_born_criteria_of_the_tetragonal_cell():
    from pto_checks import elastic

    c = np.diag([200.0, 200.0, 150.0, 50.0, 50.0, 60.0])
    c[0, 1] = c[1, 0] = 100.0
    assert elastic.born_violations_tetragonal(c) == []
    for (i, j), v, name in [((0, 1), 250.0, "C11 > |C12|"), ((3, 3), -1.0, "C44"), ((5, 5), -1.0, "C66"),
                            ((0, 2), 200.0, "2 C13^2")]:
        bad = c.copy()
        bad[i, j] = bad[j, i] = v
        assert any(name in s for s in elastic.born_violations_tetragonal(bad)), name


def test_elastic_constants_of_the_network_are_tetragonal_and_stable():
    """Finite strains with ions relaxed on the synthetic elastic network: symmetric, tetragonal
    pattern, Born-stable; the same C from a smaller strain (harmonic range)."""
    from pto_checks import elastic

    r = elastic.elastic_constants(structures.tetragonal(), make("good"))
    c = r.c_GPa
    assert r.stable and c[0, 0] == pytest.approx(c[1, 1], abs=0.1) and c[3, 3] == pytest.approx(c[4, 4], abs=0.1)
    assert np.abs(c[:3, 3:]).max() < 0.1 and c[0, 0] > 10
    r2 = elastic.elastic_constants(structures.tetragonal(), make("good"), strain=0.002, fmax=1e-5)
    assert np.allclose(r2.c_GPa, c, atol=0.3)


# --- exact probes: a dip left interpolated is recomputed at its own q --------------------------

def test_commensurate_supercell_meets_the_dip():
    assert phonons.commensurate_supercell((0, 0, 0.08), 400) == ((1, 1, 12), (0.0, 0.0, 1 / 12))
    assert phonons.commensurate_supercell((0.34, -0.34, 0), 400) == ((3, 3, 1), (1 / 3, 1 / 3, 0.0))
    sc, q = phonons.commensurate_supercell((0, 0.03, 0), 400)  # near Gamma: within 15 % of |q|
    assert sc == (1, 29, 1) and abs(q[1] - 0.03) <= 0.15 * 0.03
    assert phonons.commensurate_supercell((0.21, 0.13, 0.08), 400) is None  # 5 x 8 x 12 cells: too many atoms
    assert phonons.is_commensurate(np.array([q]), sc).all()


def _decide_with_probes(by_supercell, probe_dips, max_atoms=400, stable=True):
    """SevenNet-like escalation; ``probe_dips``: {targeted supercell: {q: f}} for the exact probes."""
    from pto_checks import elastic

    tol = tolerance("phonon")
    c = np.diag([200.0, 200.0, 150.0, 50.0, 50.0, 60.0 if stable else -5.0])
    c[0, 1] = c[1, 0] = 100.0
    asked = []

    def compute(sc):
        asked.append(sc)
        return _spectrum(sc, by_supercell[sc[0]] if sc[0] == sc[1] == sc[2] else probe_dips.get(sc, {}))

    d, res = phonons.decide_stability(compute, [(2, 2, 2), (3, 3, 3), (4, 4, 4)], tol["acoustic_gamma_thz"],
                                      tol["imaginary_threshold_thz"], tol["dip_match_grid_spacings"],
                                      lambda: elastic.ElasticResult(c, elastic.born_violations_tetragonal(c), 0.005),
                                      max_atoms)
    return d, asked


def test_dips_real_when_recomputed_exactly_pass():
    """SevenNet 7net-l3i5 as measured: every dip of the escalation is real at its own q."""
    d, asked = _decide_with_probes(SEVENNET_LIKE, {})
    assert d.outcome is Outcome.PASS and d.decided_by == (4, 4, 4), d.reason
    # the 4x4x4 dip at (0.34, 0.34, 0) is met by the 3x3x3 grid's exact (1/3, 1/3, 0), 0.007 away;
    # then 2x2x2's and 3x3x3's dips get their own probes
    assert asked[3:] == [(1, 18, 1), (1, 1, 7)]
    assert "interpolation artefacts" in d.reason and all(p.mode.exact for p in d.exact_probes)
    assert [p["supercell"] for p in d.to_dict()["exact_probes"]] == [[3, 3, 3], [1, 18, 1], [1, 1, 7]]


def test_a_dip_imaginary_at_its_own_q_fails_exactly():
    d, _ = _decide_with_probes(SEVENNET_LIKE, {(1, 1, 7): {(0, 0, 1 / 7): -0.4}})
    assert d.outcome is Outcome.FAIL and d.decided_by == (1, 1, 7) and d.mode.exact
    assert d.mode.f_thz == pytest.approx(-0.4) and "recomputed exactly with a 1x1x7 supercell" in d.reason


def test_a_dip_too_costly_to_probe_leaves_the_old_rules():
    d, asked = _decide_with_probes(SEVENNET_LIKE, {}, max_atoms=50)  # 1x18x1 is 90 atoms
    assert d.outcome is Outcome.INCONCLUSIVE and "not recomputed exactly" in d.reason
    d, _ = _decide_with_probes(SEVENNET_LIKE, {}, max_atoms=0)
    assert d.outcome is Outcome.INCONCLUSIVE and not d.exact_probes


def test_a_persisting_dip_real_at_the_probe_next_to_it_is_inconclusive_not_a_pass():
    """The interpolations agree on a dip, the exact probe next to it says real: conflicting
    evidence (a narrow instability between the probe and the dip, or an artefact) is no pass."""
    same = {n: {(0.125, 0.125, 0): -0.2} for n in (2, 3, 4)}
    d, _ = _decide_with_probes(same, {})
    assert d.outcome is Outcome.INCONCLUSIVE and "CONFLICTING" in d.reason and d.exact_probes
    d, _ = _decide_with_probes(same, {}, max_atoms=0)  # without probes the persistence rule fails it
    assert d.outcome is Outcome.FAIL


def test_every_dip_cluster_is_a_probe_target():
    """No cap on the number of places probed: a pass needs every dip recomputed exactly."""
    qs = [(x, 0.0, z) for x in (0.0, 0.25, 0.5) for z in (0.15, 0.3, 0.45)] + [(0.25, 0.25, 0.15)]  # 10 places
    below = [phonons.Mode(-0.1, q, 0, False, (4, 4, 4)) for q in qs]
    step = phonons.StabilityStep((4, 4, 4), below[0], len(below), below[0], None, None, below)
    assert len(phonons.dip_targets([step])) == 10


def test_two_dips_in_one_cluster_each_get_their_own_probe():
    """An artefact (0, 0.12, 0) -0.5 THz next to a real dip (0, 0.05, 0) -0.1 THz in the largest
    supercell, 0.07 apart: each is probed; the real one fails exactly.  (Probing only the worst of
    the 0.125-wide cluster passed this spectrum.)"""
    sweep = {2: {(0.34, 0.34, 0): -0.3}, 3: {(0, 0, 0.15): -0.2}, 4: {(0, 0.12, 0): -0.5, (0, 0.05, 0): -0.1}}
    d, asked = _decide_with_probes(sweep, {(1, 18, 1): {(0, 1 / 18, 0): -0.1}})
    assert d.outcome is Outcome.FAIL and d.decided_by == (1, 18, 1) and d.mode.exact, d.reason
    assert asked[3:] == [(1, 8, 1), (1, 18, 1)]  # the worst first, then the one next to it
    d, _ = _decide_with_probes(sweep, {})  # both artefacts: each probed real -> pass
    assert d.outcome is Outcome.PASS and len(d.exact_probes) == 4, d.reason


def test_dips_closer_than_the_probe_reach_share_one_exact_frequency():
    near = phonons.Mode(-0.1, (0.0, 0.115, 0.0), 0, False, (4, 4, 4))
    assert phonons.covers(near.q, np.array([[0.0, 0.125, 0.0]])).all()
    assert not phonons.covers((0.0, 0.05, 0.0), np.array([[0.0, 0.125, 0.0]])).any()
    assert not phonons.covers((0.0, 0.01, 0.0), np.array([[0.0, 0.0125, 0.0]])).any()  # 15 % of |q| near Gamma


def _elastic(c, converged=True):
    from pto_checks import elastic

    return elastic.ElasticResult(c, elastic.born_violations_tetragonal(c), 0.005, converged,
                                 [] if converged else ["eps3 +0.005"], tolerance("phonon")["christoffel_margin_GPa"])


def _tetragonal_c(c11, c12, c13, c33, c44, c66):
    c = np.zeros((6, 6))
    c[0, 0] = c[1, 1] = c11
    c[2, 2] = c33
    c[0, 1] = c[1, 0] = c12
    c[0, 2] = c[2, 0] = c[1, 2] = c[2, 1] = c13
    c[3, 3] = c[4, 4] = c44
    c[5, 5] = c66
    return c


BORN_VIOLATED_BUT_ACOUSTIC_STABLE = _tetragonal_c(165, 80, 80, 47, 29, 78)
ACOUSTIC_DIP = {n: {(0, 0.01, 0): -0.02} for n in (2, 3, 4)}  # in every supercell, no cell reaches q = 0.01


def _decide_lw(by_supercell, el, max_atoms=400):
    tol = tolerance("phonon")
    return phonons.decide_stability(lambda sc: _spectrum(sc, by_supercell.get(sc[0], {}) if sc[0] == sc[1] == sc[2]
                                                         else {}),
                                    [(2, 2, 2), (3, 3, 3), (4, 4, 4)], tol["acoustic_gamma_thz"],
                                    tol["imaginary_threshold_thz"], tol["dip_match_grid_spacings"],
                                    (lambda: el) if el is not None else None, max_atoms, tol["elastic_q_max"])[0]


def test_christoffel_decides_the_acoustic_limit_born_is_an_observation():
    """C11 165, C12 80, C13 80, C33 47, C44 29, C66 78 GPa: Born's 2 C13^2 < C33 (C11 + C12) is
    violated, yet the softest long-wavelength acoustic wave (rho v^2 = +3.6 GPa) is real."""
    el = _elastic(BORN_VIOLATED_BUT_ACOUSTIC_STABLE)
    assert el.violations and not el.born_stable
    assert el.christoffel.min_GPa == pytest.approx(3.64, abs=0.02)
    assert el.outcome is Outcome.PASS and el.stable
    assert _elastic(_tetragonal_c(165, 80, 80, 47, 29, -5)).outcome is Outcome.FAIL  # C66 < 0: a soft shear wave
    assert _elastic(_tetragonal_c(165, 80, 80, 47, 0.5, 78)).outcome is Outcome.INCONCLUSIVE  # within the margin


def test_a_stable_long_wavelength_probe_clears_a_near_gamma_acoustic_dip():
    """A -0.02 THz acoustic dip at q = 0.01 in every supercell, every exact q real, Christoffel
    stable (with Born violated, reported): not a fail, a pass; an unstable probe fails it."""
    d = _decide_lw(ACOUSTIC_DIP, _elastic(BORN_VIOLATED_BUT_ACOUSTIC_STABLE))
    assert d.outcome is Outcome.PASS, d.reason
    assert "cleared by the stable long-wavelength limit" in d.reason and "Born criteria violated" in d.reason
    assert d.long_wavelength["born_stable"] is False and d.long_wavelength["outcome"] == "pass"
    d = _decide_lw(ACOUSTIC_DIP, _elastic(_tetragonal_c(165, 80, 80, 47, 29, -5)))
    assert d.outcome is Outcome.FAIL and "Christoffel" in d.reason


def test_an_unconverged_elastic_relaxation_makes_the_probe_inconclusive_never_stable():
    el = _elastic(BORN_VIOLATED_BUT_ACOUSTIC_STABLE, converged=False)
    assert el.outcome is Outcome.INCONCLUSIVE and not el.stable
    d = _decide_lw(ACOUSTIC_DIP, el)
    assert d.outcome is Outcome.INCONCLUSIVE and "NOT converged" in d.reason, d.reason


def test_without_a_long_wavelength_probe_the_persisting_acoustic_dip_fails():
    d = _decide_lw(ACOUSTIC_DIP, None)
    assert d.outcome is Outcome.FAIL and "persists" in d.reason


def test_a_probeable_dip_is_decided_exactly_not_by_the_elastic_limit():
    """(0, 0.05, 0) lies beyond elastic_q_max: a stable elastic limit does not clear it; without an
    affordable probe it stays undecided."""
    d = _decide_lw({2: {(0, 0.05, 0): -0.1}, 3: {(0.34, 0.34, 0): -0.2}, 4: {(0, 0, 0.15): -0.3}},
                   _elastic(BORN_VIOLATED_BUT_ACOUSTIC_STABLE), max_atoms=20)
    assert d.outcome is Outcome.INCONCLUSIVE and "not recomputed exactly" in d.reason


def test_elastic_constants_record_an_unconverged_relaxation():
    from pto_checks import elastic

    r = elastic.elastic_constants(structures.tetragonal(), make("good"), max_steps=1, fmax=1e-6)
    assert not r.converged and r.unconverged and r.outcome is Outcome.INCONCLUSIVE
    assert r.to_dict()["converged"] is False


def test_the_verdict_reports_born_criteria_as_an_observation():
    d = _decide_lw(ACOUSTIC_DIP, _elastic(BORN_VIOLATED_BUT_ACOUSTIC_STABLE))
    v = verdicts.no_imaginary_modes({"decision": d.to_dict(), "symprec": 1e-3}, "PBE")
    assert v.outcome is Outcome.PASS and v.details["born_criteria"]["hold"] is False
    assert "Born criteria (stability of the cell against a homogeneous strain" in v.message and "VIOLATED" in v.message
