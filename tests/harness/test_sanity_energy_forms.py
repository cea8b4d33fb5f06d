"""The relative-energy form of the sanity energy check (bulk moduli), for models with no MP scale."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.calculators.emt import EMT
from ase.calculators.mixing import LinearCombinationCalculator

from pto_checks import analysis, models, structures, verdicts


def test_bulk_modulus_matches_an_independent_pressure_derivative():
    """B from the E(V) fit equals -V dP/dV from the calculator's own stress (EMT copper)."""
    cu = structures.reference_crystal("Cu")
    b_fit, v0 = analysis.bulk_modulus(cu, EMT())
    work = cu.copy()
    work.calc = EMT()
    # at the fitted equilibrium volume: P(V) by central difference of the stress
    work.set_cell(cu.cell.array * (v0 * len(cu) / cu.get_volume()) ** (1 / 3), scale_atoms=True)
    cell, vol = work.cell.array.copy(), work.get_volume()
    p = []
    for eps in (+1e-3, -1e-3):
        work.set_cell(cell * (1 + eps), scale_atoms=True)
        p.append(-np.mean(work.get_stress()[:3]))
    b_stress = -vol * (p[0] - p[1]) / (vol * ((1 + 1e-3) ** 3 - (1 - 1e-3) ** 3)) / units.GPa
    assert b_fit == pytest.approx(134.3, abs=0.5)  # ASE's EOS tutorial: EMT copper, B = 134 GPa
    assert b_fit == pytest.approx(b_stress, rel=0.02)


def test_bulk_modulus_check_fails_on_a_wrong_energy_scale():
    cu = structures.reference_crystal("Cu")
    good = verdicts.bulk_moduli({"Cu": analysis.bulk_modulus(cu, EMT())[0]}, "EMT")
    doubled = LinearCombinationCalculator([EMT()], [2.0])
    bad = verdicts.bulk_moduli({"Cu": analysis.bulk_modulus(cu, doubled)[0]}, "EMT")
    assert good.passed and not bad.passed
    assert "BROKEN ENERGY-VOLUME CURVES for Cu" in bad.message
    soft = verdicts.bulk_moduli({"Cu": 137.0 / 1.6}, "PBE")
    assert not soft.passed


def test_gptff_is_judged_on_the_relative_form():
    assert models.get_spec("gptff").energy_reference == "relative"
    assert models.get_spec("gptff:/x/gptff_v2.pth").energy_reference == "relative"
