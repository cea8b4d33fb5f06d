"""Elastic constants of a cell by finite strains (ions relaxed), and the stability of its acoustic
branches as q -> 0: the exact long-wavelength limit, the probe for an imaginary dip near Gamma
that no affordable supercell's commensurate q can reach.

The acoustic question is decided by the Christoffel (strong-ellipticity) test: for every
propagation direction n the acoustic frequencies at small q are omega^2 = q^2 lambda_i(n) / rho,
lambda_i the eigenvalues of the Christoffel matrix Gamma_ik(n) = C_ijkl n_j n_l, so the branches are
real as q -> 0 exactly when min over n of lambda_min(n) > 0.  Born's criteria (positive-definite
stiffness: stability against a homogeneous strain of the whole cell) are a stronger and different
condition; they are reported as their own observation.

Units: stiffness and Christoffel eigenvalues in GPa (Voigt notation, 1..6 = xx, yy, zz, yz, xz,
xy), strain dimensionless.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.optimize import BFGS

from pto_checks.decisions import Outcome

__all__ = ["Christoffel", "ElasticResult", "born_violations_tetragonal", "christoffel_minimum",
           "elastic_constants"]

_VOIGT = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


def full_tensor(c: np.ndarray) -> np.ndarray:
    """The 3x3x3x3 stiffness C_ijkl of a 6x6 Voigt matrix ``c`` (GPa)."""
    c = np.asarray(c, dtype=float)
    t = np.zeros((3, 3, 3, 3))
    for a, (i, j) in enumerate(_VOIGT):
        for b, (k, m) in enumerate(_VOIGT):
            for p, q in {(i, j), (j, i)}:
                for r, s in {(k, m), (m, k)}:
                    t[p, q, r, s] = c[a, b]
    return t


def _directions(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors on the upper hemisphere (Fibonacci lattice; Gamma(n) =
    Gamma(-n), so the lower half adds nothing)."""
    k = np.arange(n) + 0.5
    z = k / n
    phi = np.pi * (1 + 5**0.5) * k
    r = np.sqrt(1 - z**2)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def _lowest(t: np.ndarray, n: np.ndarray) -> np.ndarray:
    g = np.einsum("ijkl,...j,...l->...ik", t, n, n)
    return np.linalg.eigvalsh(g)[..., 0]


@dataclass(frozen=True)
class Christoffel:
    """The smallest Christoffel eigenvalue over propagation directions, ``min_GPa`` (rho v^2 of the
    softest long-wavelength acoustic wave), at unit ``direction`` (Cartesian), from
    ``n_directions`` sampled directions refined by a local minimisation."""

    min_GPa: float
    direction: tuple[float, float, float]
    n_directions: int

    def to_dict(self) -> dict:
        return {"min_GPa": self.min_GPa, "direction": list(self.direction), "n_directions": self.n_directions}


def christoffel_minimum(c: np.ndarray, n_directions: int = 20_000) -> Christoffel:
    """min over unit n of the lowest eigenvalue of Gamma_ik(n) = C_ijkl n_j n_l (``c``: 6x6 Voigt,
    GPa): ``n_directions`` Fibonacci directions on the hemisphere, then a Nelder-Mead refinement
    (scipy) in spherical angles from the five lowest."""
    from scipy.optimize import minimize

    t = full_tensor(c)
    dirs = _directions(n_directions)
    lam = _lowest(t, dirs)

    def unit(x: np.ndarray) -> np.ndarray:
        th, ph = x
        return np.array([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)])

    best_val, best_dir = float(lam.min()), dirs[int(np.argmin(lam))]
    for i in np.argsort(lam)[:5]:
        d = dirs[i]
        x0 = np.array([np.arccos(np.clip(d[2], -1, 1)), np.arctan2(d[1], d[0])])
        res = minimize(lambda x: float(_lowest(t, unit(x))), x0, method="Nelder-Mead",
                       options={"xatol": 1e-7, "fatol": 1e-9})
        if res.fun < best_val:
            best_val, best_dir = float(res.fun), unit(res.x)
    if best_dir[2] < 0:
        best_dir = -best_dir
    return Christoffel(best_val, tuple(float(x) for x in best_dir), n_directions)


@dataclass
class ElasticResult:
    """``c_GPa``: 6x6 relaxed-ion stiffness (GPa, symmetrised); ``violations``: the Born criteria of
    the tetragonal cell that fail (an observation: stability against homogeneous strain);
    ``strain``: the finite strain; ``converged``: whether every ionic relaxation of the strained
    cells reached its force limit (``unconverged`` names those that did not: their constants sit
    between clamped- and relaxed-ion and look stiffer than they are); ``margin_GPa``: the
    Christoffel minimum must clear zero by this much to decide (the precision of the constants).

    :attr:`outcome`: PASS (acoustic branches real as q -> 0: Christoffel minimum > margin, every
    relaxation converged), FAIL (minimum < -margin, converged), else INCONCLUSIVE."""

    c_GPa: np.ndarray
    violations: list[str]
    strain: float
    converged: bool = True
    unconverged: list[str] = field(default_factory=list)
    margin_GPa: float = 0.0
    christoffel: Christoffel | None = None

    def __post_init__(self) -> None:
        self.c_GPa = np.asarray(self.c_GPa, dtype=float)
        if self.christoffel is None:
            self.christoffel = christoffel_minimum(self.c_GPa)

    @property
    def outcome(self) -> Outcome:
        if not self.converged:
            return Outcome.INCONCLUSIVE
        lam = self.christoffel.min_GPa
        if lam > self.margin_GPa:
            return Outcome.PASS
        if lam < -self.margin_GPa:
            return Outcome.FAIL
        return Outcome.INCONCLUSIVE

    @property
    def stable(self) -> bool:
        """The long-wavelength acoustic branches are decided real (:attr:`outcome` PASS)."""
        return self.outcome is Outcome.PASS

    @property
    def born_stable(self) -> bool:
        return not self.violations

    def describe(self) -> str:
        """One line: constants, the Christoffel minimum and direction, Born's criteria, convergence."""
        c = self.c_GPa
        ch = self.christoffel
        n = ", ".join(f"{x:.2f}" for x in ch.direction)
        head = (f"C11 {c[0, 0]:.0f}, C12 {c[0, 1]:.0f}, C13 {c[0, 2]:.0f}, C33 {c[2, 2]:.0f}, C44 {c[3, 3]:.0f}, "
                f"C66 {c[5, 5]:.0f} GPa; lowest Christoffel eigenvalue {ch.min_GPa:.1f} GPa along ({n}) "
                f"(decides beyond +-{self.margin_GPa:g} GPa); Born criteria "
                + ("hold" if self.born_stable else "violated: " + "; ".join(self.violations)))
        if not self.converged:
            head += (f"; ionic relaxation NOT converged in {len(self.unconverged)} strained cell(s) "
                     f"({', '.join(self.unconverged)}): the constants are not the relaxed-ion ones")
        return head

    def to_dict(self) -> dict:
        return {"c_GPa": np.round(self.c_GPa, 3).tolist(), "violations": self.violations, "strain": self.strain,
                "stable": self.stable, "outcome": self.outcome.value, "converged": self.converged,
                "unconverged": self.unconverged, "margin_GPa": self.margin_GPa,
                "christoffel": self.christoffel.to_dict(), "born_stable": self.born_stable}


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
                      max_steps: int = 300, margin_GPa: float = 0.0) -> ElasticResult:
    """Relaxed-ion stiffness by central differences of the stress: for each Voigt strain
    +-``strain`` the cell is deformed, the ions relaxed (BFGS to ``fmax`` eV/A, cell fixed, at most
    ``max_steps``) and C_ij = d sigma_i / d eps_j.  ASE's stress sign (positive = tensile) is used,
    so C = +d sigma/d eps.  A relaxation that stops at ``max_steps`` is recorded
    (``converged`` False), which makes the result inconclusive.
    """
    c = np.zeros((6, 6))
    cell0 = atoms.cell.array.copy()
    unconverged = []
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
            if not BFGS(at, logfile=None).run(fmax=fmax, steps=max_steps):
                unconverged.append(f"eps{j + 1} {s:+g}")
            sig.append(at.get_stress(voigt=True))
        c[:, j] = (sig[0] - sig[1]) / (2 * strain) / units.GPa
    c = (c + c.T) / 2
    return ElasticResult(c, born_violations_tetragonal(c), strain, not unconverged, unconverged, margin_GPa)
