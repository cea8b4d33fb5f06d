"""The synthetic ferroelectric model (synthetic:ferro): energy, forces and stress consistent,
independent of atom order and origin, a polar tetragonal ground state above a cubic saddle.
Its transition temperature is measured by scripts/ferro_tc.py (minutes; numbers in the README)."""

from __future__ import annotations

import numpy as np
import pytest

from pto_checks import analysis, structures
from pto_checks.models.ferro import FerroCalculator, FerroParameters, make


def _frame(reps=(2, 2, 3), seed=1):
    at = structures.supercell(structures.tetragonal(a=3.90, c=4.15), *reps)
    at.rattle(0.05, seed=seed)
    at.calc = make()
    return at


def test_forces_are_minus_the_energy_gradient():
    at = _frame()
    f = at.get_forces()
    h = 1e-5
    rng = np.random.default_rng(0)
    for i in rng.choice(len(at), 8, replace=False):
        for a in range(3):
            b = at.copy()
            b.calc = at.calc
            b.positions[i, a] += h
            ep = b.get_potential_energy()
            b.positions[i, a] -= 2 * h
            em = b.get_potential_energy()
            assert -(ep - em) / (2 * h) == pytest.approx(f[i, a], abs=1e-6)
    assert np.allclose(f.sum(axis=0), 0, atol=1e-10)  # translation invariant: no net force


def test_stress_is_the_strain_derivative_of_the_energy():
    at = _frame()
    s = at.get_stress(voigt=False)
    vol, cell, h = at.get_volume(), at.cell.array.copy(), 1e-5
    for a in range(3):
        for b in range(a, 3):
            e = []
            for sign in (1, -1):
                eps = np.eye(3)
                eps[a, b] += sign * h / 2
                eps[b, a] += sign * h / 2
                c = at.copy()
                c.calc = at.calc
                c.set_cell(cell @ eps, scale_atoms=True)
                e.append(c.get_potential_energy())
            assert (e[0] - e[1]) / (2 * h) / vol == pytest.approx(s[a, b], abs=1e-8)


def test_atom_order_and_origin_do_not_matter():
    at = _frame()
    e0, f0 = at.get_potential_energy(), at.get_forces()
    perm = np.random.default_rng(3).permutation(len(at))
    b = at[perm]
    b.positions += np.array([1.1, -0.4, 7.3])
    b.wrap()
    b.calc = make()
    assert b.get_potential_energy() == pytest.approx(e0, abs=1e-10)
    assert np.allclose(b.get_forces(), f0[perm], atol=1e-10)


def test_not_a_perovskite_supercell_is_a_clear_error():
    at = structures.supercell(structures.tetragonal(a=3.90, c=4.15), 2)[:-1]
    at.calc = make()
    with pytest.raises(ValueError, match="supercell of the 5-atom PbTiO3 cell"):
        at.get_potential_energy()


def test_polar_tetragonal_ground_state_and_cubic_saddle():
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    cub = structures.supercell(structures.cubic(3.90), 2)
    cub.calc = make()
    assert np.abs(cub.get_forces()).max() < 1e-10  # the cubic cell is stationary (a saddle)
    at = structures.supercell(structures.tetragonal(a=3.90, c=4.15), 2)
    at.calc = make()
    BFGS(FrechetCellFilter(at, mask=[1, 1, 1, 0, 0, 0]), logfile=None).run(fmax=1e-3, steps=500)
    lat = analysis.lattice_parameters(at.cell, (2, 2, 2))
    p = analysis.polarization(at.positions, at.cell.array, (2, 2, 2), numbers=at.numbers)["P"]
    de = (cub.get_potential_energy() - at.get_potential_energy()) / 8
    assert 1.02 < lat.c_over_a < 1.05  # tetragonal, 2-5x the tetragonal threshold 0.01
    assert 0.5 < p[2] < 0.9 and np.allclose(p[:2], 0, atol=1e-6)  # C/m^2, along the long axis
    assert 0.1 < de < 0.3  # eV/f.u.


def test_registered_as_a_synthetic_variant_with_its_parameters_in_the_identity():
    from pto_checks.models import load_model

    m = load_model("synthetic:ferro", "cpu")
    assert isinstance(m.calculator, FerroCalculator)
    other = FerroCalculator(FerroParameters(J_eV_per_A2=0.6))
    assert other.identity() != m.calculator.identity()
