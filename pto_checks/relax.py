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
    symprec: float = 1e-3,
) -> RelaxResult:
    """Relax positions and cell of a copy of ``atoms`` with ``calc``.

    ``hold_symmetry`` keeps the starting space group (``ase.constraints.FixSymmetry`` at
    ``symprec`` Angstrom), and the result is then symmetrized exactly (:func:`symmetrize`): the
    polar P4mm cell whose phonons are judged, and the cubic cell, which a real model keeps by
    symmetry anyway but which round-off could otherwise let slide into the polar phase.
    """
    work = atoms.copy()
    work.calc = calc
    if hold_symmetry:
        from ase.constraints import FixSymmetry

        work.set_constraint(FixSymmetry(work, symprec=symprec))
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
    if hold_symmetry:
        out = symmetrize(out, symprec)
    out.info.update(energy_eV=energy, relax_converged=converged)
    return RelaxResult(out, energy, int(opt.nsteps), converged, fmax, final_fmax, max_steps, wall,
                       hold_symmetry)


def symmetrize(atoms: Atoms, symprec: float = 1e-3) -> Atoms:
    """Copy of ``atoms`` with cell and positions made exactly symmetric (spglib at ``symprec``,
    Angstrom, through ``ase.spacegroup.symmetrize.refine_symmetry``) and an orthogonal cell
    (tetragonal or cubic) written in its exact form ``diag(a, a, c)``: a = mean of the two equal
    lengths, fractional positions kept.  Other cells are only refined."""
    from ase.spacegroup.symmetrize import refine_symmetry

    out = atoms.copy()
    refine_symmetry(out, symprec=symprec)
    cell = out.cell
    lengths, angles = cell.lengths(), cell.angles()
    if np.allclose(angles, 90.0, atol=1e-6):  # orthogonal: write it as diag (rotating the frame)
        frac = out.get_scaled_positions(wrap=False)
        pairs = [(0, 1), (0, 2), (1, 2)]
        i, j = min(pairs, key=lambda p: abs(lengths[p[0]] - lengths[p[1]]))
        new = lengths.copy()
        if abs(lengths[i] - lengths[j]) < symprec:
            new[i] = new[j] = 0.5 * (lengths[i] + lengths[j])
        out.set_cell(np.diag(new), scale_atoms=False)
        out.set_scaled_positions(frac)
    return out


def spacegroup(atoms: Atoms, symprec: float = 1e-3) -> tuple[str, int]:
    """International symbol and number of the space group of ``atoms`` (spglib, ``symprec`` A)."""
    import spglib

    ds = spglib.get_symmetry_dataset((atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers),
                                     symprec=symprec)
    if ds is None:  # pragma: no cover - spglib gives up only on broken cells
        return "P1", 1
    return str(ds.international), int(ds.number)


def free_start(atoms: Atoms, rattle_A: float, shear: float, seed: int) -> Atoms:
    """``atoms`` with every atom displaced at random (rms ``rattle_A`` Angstrom per component,
    seeded) and the cell sheared by ``shear`` in xy, xz and yz: a generic low-symmetry start."""
    out = atoms.copy()
    rng = np.random.default_rng(seed)
    eps = np.eye(3) + shear * (np.ones((3, 3)) - np.eye(3))
    out.set_cell(out.cell.array @ eps, scale_atoms=True)
    out.positions = out.positions + rng.normal(0.0, rattle_A, size=out.positions.shape)
    return out


@dataclass
class SymmetryObservation:
    """Does the model keep P4mm when nothing holds it?

    The unconstrained relaxation from a perturbed P4mm cell (:func:`free_start`) against the
    P4mm-held one: space groups at ``symprec`` (Angstrom) and at 1e-5 A, and the energy gained by
    breaking the symmetry, ``energy_gain_per_fu`` = E(held) - E(free) in eV per formula unit
    (positive: the unconstrained cell is lower).  ``free_spacegroup_loose``: at 1e-2 A (a soft
    model's unconstrained relaxation to fmax 1e-3 eV/A can stop further than symprec from P4mm).
    ``error``: why the unconstrained relaxation stopped (the model blew up or raised), else None.
    """

    symprec: float
    held_spacegroup: str
    free_spacegroup: str | None
    free_spacegroup_tight: str | None
    free_spacegroup_loose: str | None
    energy_gain_per_fu: float | None
    free_converged: bool
    error: str | None = None

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class GroundState:
    """Relaxed tetragonal (polar; P4mm held unless the protocol says otherwise) and cubic
    (Pm-3m held) PbTiO3 cells for one model, and the unconstrained tetragonal relaxation
    (``tetragonal_free``, None when it failed) with its :class:`SymmetryObservation`."""

    tetragonal: RelaxResult
    cubic: RelaxResult
    tetragonal_free: RelaxResult | None = None
    symmetry: SymmetryObservation | None = None


def relax_phases(calc: Calculator, fmax: float = 1e-3, max_steps: int = 1000, symprec: float = 1e-3,
                 hold_symmetry: bool = True, free_start_rattle_A: float = 0.02,
                 free_start_shear: float = 0.003, free_start_seed: int = 7) -> GroundState:
    """Relax the PBEsol tetragonal and cubic PbTiO3 cells with ``calc`` (study protocol), the
    tetragonal one with P4mm held (``hold_symmetry``), and once more without any constraint from a
    perturbed start (:func:`free_start`), to observe whether the model keeps P4mm.

    With ``hold_symmetry=False`` the tetragonal result *is* the unconstrained relaxation (the
    protocol before symmetry was held; kept to show what holding it changes).
    """
    from pto_checks import structures

    start = structures.tetragonal()
    held = relax(start, calc, fmax=fmax, max_steps=max_steps, hold_symmetry=True, symprec=symprec)
    cub = relax(structures.cubic(), calc, fmax=fmax, max_steps=max_steps, hold_symmetry=True,
                symprec=symprec)
    free, error = None, None
    try:
        free = relax(free_start(start, free_start_rattle_A, free_start_shear, free_start_seed), calc,
                     fmax=fmax, max_steps=max_steps)
        if not np.isfinite(free.energy):
            error, free = f"non-finite energy {free.energy}", None
    except Exception as exc:  # the model raised or blew up on a low-symmetry cell: a result
        error = f"{type(exc).__name__}: {exc}"
    nfu = len(start) / 5
    obs = SymmetryObservation(
        symprec, spacegroup(held.atoms, symprec)[0],
        None if free is None else spacegroup(free.atoms, symprec)[0],
        None if free is None else spacegroup(free.atoms, 1e-5)[0],
        None if free is None else spacegroup(free.atoms, 1e-2)[0],
        None if free is None else (held.energy - free.energy) / nfu,
        bool(free is not None and free.converged), error)
    tet = held if hold_symmetry or free is None else free
    return GroundState(tet, cub, free, obs)
