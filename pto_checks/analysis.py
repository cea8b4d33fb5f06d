"""Observables: perovskite lattice parameters with the long axis found, and sanity metrics.

Pure functions.  Lengths in Angstrom, energies in eV, stress in eV/A^3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.stress import full_3x3_to_voigt_6_stress


@dataclass(frozen=True)
class Lattice:
    """Pseudo-cubic perovskite lattice: ``a`` (mean of the two short axes), ``c`` (the long axis).

    ``axis`` is the index (0, 1, 2) of the cell vector found to be the long one; ``lengths``
    the three per-unit-cell lengths in cell-vector order.
    """

    a: float
    c: float
    axis: int
    lengths: tuple[float, float, float]

    @property
    def c_over_a(self) -> float:
        return self.c / self.a


def unit_cell_lengths(cell: np.ndarray, repetitions: tuple[int, int, int] = (1, 1, 1)) -> np.ndarray:
    """Lengths (Angstrom) of the three cell vectors divided by the supercell repetitions."""
    cell = np.asarray(cell, dtype=float).reshape(3, 3)
    return np.linalg.norm(cell, axis=1) / np.asarray(repetitions, dtype=float)


def lattice_parameters(cell: np.ndarray, repetitions: tuple[int, int, int] = (1, 1, 1)) -> Lattice:
    """a, c and the long axis of a (super)cell of the perovskite.

    The long axis is found, not assumed: c is the longest of the three per-cell lengths and a the
    mean of the other two, so the result does not depend on how the axes are labelled.
    """
    lengths = unit_cell_lengths(cell, repetitions)
    axis = int(np.argmax(lengths))
    others = [lengths[i] for i in range(3) if i != axis]
    return Lattice(float(np.mean(others)), float(lengths[axis]), axis, tuple(float(x) for x in lengths))


def numerical_stress(atoms: Atoms, calc: Calculator, strain: float = 5e-3) -> np.ndarray:
    """Stress (Voigt, eV/A^3) as the central finite difference (1/V) dE/d(strain), diagonal only.

    Off-diagonal Voigt entries are returned as NaN (not computed).
    """
    work = atoms.copy()
    work.calc = calc
    cell = atoms.cell.array.copy()
    vol = atoms.get_volume()
    sigma = np.full((3, 3), np.nan)
    for i in range(3):
        e = []
        for sign in (+1, -1):
            eps = np.eye(3)
            eps[i, i] += sign * strain
            work.set_cell(cell @ eps, scale_atoms=True)
            e.append(work.get_potential_energy())
        sigma[i, i] = (e[0] - e[1]) / (2 * strain) / vol
    return full_3x3_to_voigt_6_stress(sigma)


def translation_change(atoms: Atoms, calc: Calculator, shift: np.ndarray) -> tuple[float, float]:
    """(|dE| per atom in eV, max |dF| in eV/A) when every atom moves by ``shift`` (Angstrom)."""
    a = atoms.copy()
    a.calc = calc
    e0 = a.get_potential_energy()
    f0 = a.get_forces().copy()
    a.positions = a.positions + np.asarray(shift)
    e1 = a.get_potential_energy()
    f1 = a.get_forces()
    return abs(e1 - e0) / len(a), float(np.max(np.abs(f1 - f0)))
