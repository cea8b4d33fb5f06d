"""Sanity before physics (marker ``sanity``): catch silently broken weights and units.

Energies of simple crystals on the scale the model was trained on; finite forces; stress in
ASE's units (eV/A^3, checked against a finite difference of the energy); translation invariance.
"""

import numpy as np
import pytest

from pto_checks import analysis, structures, verdicts
from pto_checks.reference import load_reference

pytestmark = pytest.mark.sanity


@pytest.fixture(scope="module")
def rattled_pto():
    """A 2x1x1 PbTiO3 cell, rattled 0.05 A and strained, so forces and stress are non-zero."""
    atoms = structures.supercell(structures.tetragonal(), 2, 1, 1)
    atoms.rattle(0.05, seed=7)
    atoms.set_cell(atoms.cell.array * np.array([0.98, 1.0, 1.02])[:, None], scale_atoms=True)
    return atoms


def test_reference_energies(model, check, pto_results):
    """Energies per atom of Si, Cu, Pb, MgO, TiO2 match the model's training energy scale.

    A model with no public absolute scale (``energy_reference = "relative"``, e.g. GPTFF, trained on
    Atomly) is checked on energy differences instead: bulk moduli from E(V) against experiment (its
    energies per atom are recorded, not judged).
    """
    scale = model.spec.energy_reference
    if scale == "relative":
        for name in load_reference("sanity")["crystals"]:
            atoms = structures.reference_crystal(name)
            atoms.calc = model.calculator
            e = float(atoms.get_potential_energy()) / len(atoms)
            pto_results.quantity(model.name, "sanity", f"energy_per_atom_{name}", e, "eV/atom")
        moduli = {}
        for name in load_reference("sanity")["bulk_modulus"]["crystals"]:
            moduli[name], _ = analysis.bulk_modulus(structures.reference_crystal(name), model.calculator)
            pto_results.quantity(model.name, "sanity", f"bulk_modulus_{name}", moduli[name], "GPa")
        check(verdicts.bulk_moduli(moduli, model.spec.functional))
        return
    if scale not in ("mp-raw", "mp2020"):
        pytest.skip(f"no public reference energy scale for {model.name} (trained on "
                    f"{model.spec.functional} data, energy_reference={scale!r})")
    measured = {}
    for name in load_reference("sanity")["crystals"]:
        atoms = structures.reference_crystal(name)
        atoms.calc = model.calculator
        measured[name] = float(atoms.get_potential_energy()) / len(atoms)
        pto_results.quantity(model.name, "sanity", f"energy_per_atom_{name}", measured[name], "eV/atom")
    check(verdicts.reference_energies(measured, scale, model.spec.functional))


def test_forces_finite(model, rattled_pto, check):
    """Energy, forces and stress are finite numbers."""
    atoms = rattled_pto.copy()
    atoms.calc = model.calculator
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    ok = bool(np.isfinite(e) and np.all(np.isfinite(f)) and np.all(np.isfinite(s)))
    check(verdicts.check_bound("forces_finite", ok,
                               f"E finite: {np.isfinite(e)}, forces finite: {np.all(np.isfinite(f))}, "
                               f"stress finite: {np.all(np.isfinite(s))}"))


def test_stress_in_ase_units(model, rattled_pto, check, pto_results):
    """Stress equals (1/V) dE/d(strain) in eV/A^3 (catches GPa or sign mistakes)."""
    atoms = rattled_pto.copy()
    atoms.calc = model.calculator
    analytic = atoms.get_stress()[:3]
    numeric = analysis.numerical_stress(rattled_pto, model.calculator)[:3]
    err = np.abs(analytic - numeric)
    ok = bool(np.all(err <= 0.1 * np.abs(numeric) + 2e-4))
    pto_results.quantity(model.name, "sanity", "stress_diag_analytic", analytic.tolist(), "eV/A^3")
    pto_results.quantity(model.name, "sanity", "stress_diag_numeric", numeric.tolist(), "eV/A^3")
    ratio = float(np.median(analytic / numeric)) if np.all(numeric != 0) else float("nan")
    check(verdicts.check_bound(
        "stress_in_ase_units", ok,
        f"stress (xx, yy, zz) from the model {np.round(analytic, 5).tolist()} vs finite difference "
        f"{np.round(numeric, 5).tolist()} eV/A^3 (median ratio {ratio:.3g}; tolerance 10% + 2e-4)"
        + ("" if ok else ": the model's stress is not in eV/A^3 (GPa gives a ratio of 160)"),
        {"analytic": analytic.tolist(), "numeric": numeric.tolist()}))


def test_translation_invariance(model, rattled_pto, check):
    """Moving every atom by the same vector changes neither energy nor forces."""
    de, df = analysis.translation_change(rattled_pto, model.calculator, np.array([0.37, -1.21, 2.03]))
    ok = de <= 1e-4 and df <= 5e-3
    check(verdicts.check_bound("translation_invariance", ok,
                               f"|dE| = {de:.2e} eV/atom (tol 1e-4), max |dF| = {df:.2e} eV/A (tol 5e-3)",
                               {"de_per_atom": de, "df_max": df}))
