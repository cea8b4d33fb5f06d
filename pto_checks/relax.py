"""0 K variable-cell relaxation (FrechetCellFilter + BFGS, as in the PTO-test study).

Energies in eV, forces in eV/A, lengths in Angstrom.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from pto_checks.structures import clean_cell


@dataclass
class RelaxResult:
    """A relaxed structure and how the relaxation went.

    ``converged`` is False when the step cap ``max_steps`` was hit before ``fmax`` (eV/A);
    ``final_fmax`` is the largest generalized force of the filter at the end (eV/A).
    """

    atoms: Atoms
    energy: float
    steps: int
    converged: bool
    fmax: float
    final_fmax: float
    max_steps: int
    wall_s: float
    hold_symmetry: bool

    def summary(self) -> dict:
        """JSON-ready description (no structure)."""
        return {
            "energy_eV": self.energy,
            "steps": self.steps,
            "converged": self.converged,
            "hit_step_cap": not self.converged,
            "fmax_eV_per_A": self.fmax,
            "final_fmax_eV_per_A": self.final_fmax,
            "max_steps": self.max_steps,
            "wall_s": self.wall_s,
            "hold_symmetry": self.hold_symmetry,
        }


def relax(
    atoms: Atoms,
    calc: Calculator,
    fmax: float = 1e-3,
    max_steps: int = 1000,
    hold_symmetry: bool = False,
    logfile: str | None = None,
) -> RelaxResult:
    """Relax positions and cell of a copy of ``atoms`` with ``calc``.

    ``hold_symmetry`` keeps the starting space group (``ase.constraints.FixSymmetry``): used for
    the cubic phase, which a real model keeps by symmetry anyway but which round-off could
    otherwise let slide into the polar phase.
    """
    work = atoms.copy()
    work.calc = calc
    if hold_symmetry:
        from ase.constraints import FixSymmetry

        work.set_constraint(FixSymmetry(work, symprec=1e-3))
    filt = FrechetCellFilter(work)
    opt = BFGS(filt, logfile=logfile)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converged = bool(opt.run(fmax=fmax, steps=max_steps))
    wall = time.perf_counter() - t0
    final_fmax = float(np.sqrt((filt.get_forces() ** 2).sum(axis=1).max()))
    energy = float(work.get_potential_energy())
    out = clean_cell(work)
    out.set_constraint()
    out.calc = None
    out.info.update(energy_eV=energy, relax_converged=converged)
    return RelaxResult(out, energy, int(opt.nsteps), converged, fmax, final_fmax, max_steps, wall,
                       hold_symmetry)


@dataclass
class GroundState:
    """Relaxed tetragonal (polar) and cubic (symmetry held) PbTiO3 cells for one model."""

    tetragonal: RelaxResult
    cubic: RelaxResult


def relax_phases(calc: Calculator, fmax: float = 1e-3, max_steps: int = 1000) -> GroundState:
    """Relax the PBEsol tetragonal and cubic PbTiO3 cells with ``calc`` (study protocol)."""
    from pto_checks import structures

    tet = relax(structures.tetragonal(), calc, fmax=fmax, max_steps=max_steps)
    cub = relax(structures.cubic(), calc, fmax=fmax, max_steps=max_steps, hold_symmetry=True)
    return GroundState(tet, cub)
