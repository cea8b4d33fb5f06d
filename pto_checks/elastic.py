"""Elastic constants of a cell by finite strains (ions relaxed), and Born's mechanical stability of
the tetragonal (4mm) cell: the exact long-wavelength limit of the acoustic branches, the probe for
an imaginary dip near Gamma that no finite supercell's commensurate q can reach.

Units: stiffness in GPa (Voigt notation, 1..6 = xx, yy, zz, yz, xz, xy), strain dimensionless.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.optimize import BFGS

__all__ = ["ElasticResult", "born_violations_tetragonal", "elastic_constants"]

_VOIGT = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


@dataclass
class ElasticResult:
    """``c_GPa``: 6x6 relaxed-ion stiffness (GPa, symmetrised); ``violations``: the Born criteria
    of the tetragonal cell that fail (empty = mechanically stable); ``strain``: the finite strain."""

    c_GPa: np.ndarray
    violations: list[str]
    strain: float

    @property
    def stable(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict:
        return {"c_GPa": np.round(self.c_GPa, 3).tolist(), "violations": self.violations, "strain": self.strain,
                "stable": self.stable}


def born_violations_tetragonal(c: np.ndarray) -> list[str]:
    """The Born stability criteria of a tetragonal crystal (Laue class 4/mmm; F. Mouhat and
    F.-X. Coudert, Phys. Rev. B 90, 224104 (2014), eq. 20) that ``c`` (6x6, GPa) violates:
    C11 > |C12|, 2 C13^2 < C33 (C11 + C12), C44 > 0, C66 > 0."""
    c11, c12, c13, c33, c44, c66 = c[0, 0], c[0, 1], c[0, 2], c[2, 2], c[3, 3], c[5, 5]
    out = []
    if not c11 > abs(c12):
        out.append(f"C11 > |C12| ({c11:.1f} vs {abs(c12):.1f} GPa)")
    if not 2 * c13**2 < c33 * (c11 + c12):
        out.append(f"2 C13^2 < C33 (C11 + C12) ({2 * c13**2:.0f} vs {c33 * (c11 + c12):.0f} GPa^2)")
    if not c44 > 0:
        out.append(f"C44 > 0 ({c44:.1f} GPa)")
    if not c66 > 0:
        out.append(f"C66 > 0 ({c66:.1f} GPa)")
    return out


def elastic_constants(atoms: Atoms, calc: Calculator, strain: float = 0.005, fmax: float = 1e-4,
                      max_steps: int = 300) -> ElasticResult:
    """Relaxed-ion stiffness by central differences of the stress: for each Voigt strain
    +-``strain`` the cell is deformed, the ions relaxed (BFGS to ``fmax`` eV/A, cell fixed) and
    C_ij = d sigma_i / d eps_j.  ASE's stress sign (positive = tensile) is used, so C = +d sigma/d eps.
    """
    c = np.zeros((6, 6))
    cell0 = atoms.cell.array.copy()
    for j, (a, b) in enumerate(_VOIGT):
        sig = []
        for s in (strain, -strain):
            eps = np.zeros((3, 3))
            if a == b:
                eps[a, a] = s
            else:
                eps[a, b] = eps[b, a] = s / 2  # engineering shear strain s
            at = atoms.copy()
            at.set_cell(cell0 @ (np.eye(3) + eps), scale_atoms=True)
            at.calc = calc
            BFGS(at, logfile=None).run(fmax=fmax, steps=max_steps)
            sig.append(at.get_stress(voigt=True))
        c[:, j] = (sig[0] - sig[1]) / (2 * strain) / units.GPa
    c = (c + c.T) / 2
    return ElasticResult(c, born_violations_tetragonal(c), strain)
