"""PbTiO3 structures: the tetragonal P4mm and cubic Pm-3m cells and their supercells.

All lengths in Angstrom.  Reference cells come from ``reference_data/pto.toml``
(PBEsol-relaxed positions used by the PTO-test study).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from pto_checks.reference import load_reference


def tetragonal(a: float | None = None, c: float | None = None) -> Atoms:
    """Polar tetragonal P4mm PbTiO3 (5 atoms), polar axis along z.

    Fractional positions are the PBEsol ones; ``a`` and ``c`` (Angstrom) default to the
    PBEsol lattice (3.8741, 4.1995).
    """
    ref = load_reference()["structures"]["tetragonal"]
    a = ref["a"] if a is None else a
    c = ref["c"] if c is None else c
    frac = np.array(ref["fractional_positions"], dtype=float)
    return Atoms(
        symbols=list(ref["symbols"]),
        scaled_positions=frac,
        cell=np.diag([a, a, c]),
        pbc=True,
    )


def cubic(a: float | None = None) -> Atoms:
    """Paraelectric cubic Pm-3m PbTiO3 (5 atoms); ``a`` in Angstrom (default PBEsol 3.9217)."""
    ref = load_reference()["structures"]["cubic"]
    a = ref["a"] if a is None else a
    frac = np.array(ref["fractional_positions"], dtype=float)
    return Atoms(symbols=list(ref["symbols"]), scaled_positions=frac, cell=np.diag([a] * 3), pbc=True)


def supercell(atoms: Atoms, n: int, m: int | None = None, l: int | None = None) -> Atoms:  # noqa: E741
    """Repeat ``atoms`` n x m x l times (m, l default to n); atom order is unit cell by unit cell."""
    m = n if m is None else m
    l = n if l is None else l  # noqa: E741
    if min(n, m, l) < 1:
        raise ValueError(f"supercell repetitions must be >= 1, got {(n, m, l)}")
    return atoms.repeat((n, m, l))


def clean_cell(atoms: Atoms, tol: float = 1e-6) -> Atoms:
    """Return a copy whose cell has off-diagonal elements below ``tol`` (Angstrom) zeroed.

    ASE's ``NPT`` refuses cells that are not exactly upper triangular; relaxations leave
    round-off of ~1e-10 Angstrom there.
    """
    out = atoms.copy()
    cell = out.cell.array.copy()
    off = ~np.eye(3, dtype=bool)
    small = off & (np.abs(cell) < tol)
    cell[small] = 0.0
    out.set_cell(cell, scale_atoms=True)
    return out


def reference_crystal(name: str) -> Atoms:
    """A simple crystal of ``reference_data/sanity.toml`` (Si, Cu, Pb, MgO, TiO2) for sanity checks."""
    from ase.build import bulk
    from ase.spacegroup import crystal

    entry = load_reference("sanity")["crystals"][name]
    kind = entry["kind"]
    if kind in ("diamond", "fcc", "rocksalt"):
        return bulk(name, kind, a=entry["a"])
    if kind == "rutile":
        u = entry["u"]
        return crystal(["Ti", "O"], basis=[(0, 0, 0), (u, u, 0)], spacegroup=136,
                       cellpar=[entry["a"], entry["a"], entry["c"], 90, 90, 90])
    raise ValueError(f"unknown crystal kind {kind!r}")
