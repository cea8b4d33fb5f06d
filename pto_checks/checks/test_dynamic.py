"""Finite-temperature checks (marker ``dynamic``; ``npt`` / ``nvt``): heating sweeps 300-1000 K.

NPT as the study ran it (ASE NPT: Nose-Hoover + Parrinello-Rahman, ttime 25 fs, pfactor 75^2 fs,
diagonal mask) from the polar cell at a = 3.90, c = 4.15 A; NVT (Langevin, 0.01/fs) at that lattice.
Choose the fidelity with --protocol paper|quick|smoke and the integrator with --npt-integrator.
"""

import pytest

from pto_checks import verdicts

pytestmark = pytest.mark.dynamic


@pytest.mark.npt
def test_npt_no_melting_or_instability(model, npt_sweep, check):
    """NPT: a crystal (no melting, no blow-up) at every temperature up to 1000 K."""
    check(verdicts.no_melting_or_instability(npt_sweep, model.spec.functional))


@pytest.mark.npt
def test_tetragonal_at_300K(model, npt_sweep, check):
    """NPT: the tetragonal, polar phase is stable at 300 K."""
    check(verdicts.polar_at_low_temperature(npt_sweep, model.spec.functional))


@pytest.mark.npt
def test_cubic_above_tc(model, npt_sweep, check):
    """NPT: c/a -> 1 (cubic) above Tc and at the top of the sweep."""
    check(verdicts.cubic_above_tc(npt_sweep, model.spec.functional))


@pytest.mark.npt
def test_no_supertetragonal_phase(model, npt_sweep, check):
    """NPT: no runaway 'supertetragonal' c/a at any temperature."""
    check(verdicts.no_supertetragonal(npt_sweep, model.spec.functional))


@pytest.mark.npt
def test_tc_vs_experiment(model, npt_sweep, check):
    """NPT: Tc from c/a(T) within tolerance of experiment (760 K)."""
    check(verdicts.tc_vs_experiment(npt_sweep, model.spec.functional))


@pytest.mark.nvt
def test_nvt_no_melting_or_instability(model, nvt_sweep, check):
    """NVT: a crystal at every temperature up to 1000 K."""
    check(verdicts.no_melting_or_instability(nvt_sweep, model.spec.functional))


@pytest.mark.nvt
def test_polar_at_300K(model, nvt_sweep, check):
    """NVT: polar (|P| above threshold) at 300 K."""
    check(verdicts.polar_at_low_temperature(nvt_sweep, model.spec.functional))


@pytest.mark.nvt
def test_polarization_vanishes_above_tc(model, nvt_sweep, check):
    """NVT: Pz drops to near zero at the top of the sweep."""
    check(verdicts.polarization_vanishes(nvt_sweep, model.spec.functional))
