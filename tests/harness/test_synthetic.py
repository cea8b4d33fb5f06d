"""The deliberately flawed calculators are themselves correct where they claim to be."""

from __future__ import annotations

import numpy as np
import pytest

from pto_checks import structures
from pto_checks.models.synthetic import make


def _numeric_forces(atoms, d=1e-5):
    f = np.zeros((len(atoms), 3))
    for a in range(len(atoms)):
        for i in range(3):
            p = atoms.positions.copy()
            p[a, i] += d
            atoms.positions = p
            ep = atoms.get_potential_energy()
            p[a, i] -= 2 * d
            atoms.positions = p
            em = atoms.get_potential_energy()
            p[a, i] += d
            atoms.positions = p
            f[a, i] = -(ep - em) / (2 * d)
    return f


@pytest.mark.parametrize("variant", ["good", "unstable", "not_invariant"])
def test_forces_are_minus_gradient(variant):
    at = structures.supercell(structures.tetragonal(), 1, 2, 1)
    at.rattle(0.05, seed=1)
    at.calc = make(variant)
    assert np.allclose(at.get_forces(), _numeric_forces(at), atol=1e-6)


def test_atom_order_and_wrapping_do_not_matter():
    """phonopy orders supercell atoms differently from ASE's repeat; wrapping moves atoms."""
    at = structures.supercell(structures.tetragonal(), 2, 2, 2)
    at.rattle(0.03, seed=2)
    at.calc = make("good")
    e0, f0 = at.get_potential_energy(), at.get_forces()
    order = np.random.default_rng(0).permutation(len(at))
    shuffled = at[order]
    shuffled.calc = make("good")
    assert shuffled.get_potential_energy() == pytest.approx(e0)
    assert np.allclose(shuffled.get_forces(), f0[order])
    wrapped = at.copy()
    wrapped.positions += [2.0, -1.0, 3.0]
    wrapped.wrap()
    wrapped.calc = make("good")
    assert wrapped.get_potential_energy() == pytest.approx(e0)


def test_gpa_variant_stress_is_160_times_larger():
    at = structures.supercell(structures.tetragonal(), 2, 1, 1)
    at.rattle(0.05, seed=1)
    at.calc = make("good")
    s_ok = at.get_stress()
    at.calc = make("gpa_stress")
    assert np.allclose(at.get_stress() / s_ok, 160.2176, rtol=1e-4)
