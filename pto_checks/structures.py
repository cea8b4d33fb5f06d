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


# ---------------------------------------------------------------------------------------------
# Site types of a perovskite supercell, from the structure (species and geometry), not from the
# atom order.

#: Ideal cubic perovskite sites of the 5-atom cell (fractional): Pb, Ti, O_z, O_y, O_x.  An
#: oxygen's type is the axis of the Ti-O-Ti bond it sits on (O_z lies between two Ti along z).
IDEAL_SITES = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5],
                        [0.0, 0.5, 0.5]])
#: Site type (basis index) -> Cartesian axis of the oxygen's Ti-O bond (basis 2, 3, 4 -> z, y, x).
O_BOND_AXIS = {2: 2, 3: 1, 4: 0}
_SITES_OF_SPECIES = {82: (0,), 22: (1,), 8: (2, 3, 4)}


def perovskite_sites(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray,
                     reps: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Assign every atom of an n x m x l PbTiO3 supercell to an ideal cubic site of its species.

    Returns ``(basis, cell_index, u)``: ``basis`` (N,) 0 Pb, 1 Ti, 2 O_z, 3 O_y, 4 O_x;
    ``cell_index`` (N, 3) the unit cell of the site (0 <= index < reps); ``u`` (N, 3, Angstrom) the
    displacement from that site after removing the rigid translation that puts the first Pb on
    its site.  Pb and Ti are typed by species; an oxygen by the nearest of the three oxygen sites,
    i.e. by the axis of the two Ti between which it sits (the O sites are a/sqrt(2) = 2.8 A apart,
    far beyond thermal displacements of a crystal).  Independent of atom order, origin and
    periodic wrapping.  In a molten frame sites may be doubly occupied: no error here (order
    metrics detect it); see :func:`site_map` for a strict one-to-one map.
    """
    numbers = np.asarray(numbers)
    reps_a = np.asarray(reps)
    cell = np.asarray(cell, dtype=float)
    frac_uc = np.linalg.solve(cell.T, np.asarray(positions, dtype=float).T).T * reps_a
    unknown = sorted(set(numbers.tolist()) - set(_SITES_OF_SPECIES))
    if unknown:
        raise ValueError(f"not a PbTiO3 cell: atomic numbers {unknown} are not Pb, Ti or O")
    pb = np.flatnonzero(numbers == 82)
    if len(pb) == 0:
        raise ValueError("not a PbTiO3 cell: no Pb atom to anchor the sites")
    delta = frac_uc[pb[0]] - np.rint(frac_uc[pb[0]])
    rel = frac_uc - delta
    # distance to each of the five sites (minimum image within the unit-cell lattice)
    d = rel[:, None, :] - IDEAL_SITES[None, :, :]
    d -= np.rint(d)
    dist = np.linalg.norm((d / reps_a) @ cell, axis=2)
    allowed = np.zeros((len(numbers), 5), dtype=bool)
    for z, sites in _SITES_OF_SPECIES.items():
        allowed[np.ix_(numbers == z, list(sites))] = True
    basis = np.argmin(np.where(allowed, dist, np.inf), axis=1)
    r = rel - IDEAL_SITES[basis]
    cidx = np.rint(r)
    u = ((r - cidx) / reps_a) @ cell
    return basis, np.mod(cidx, reps_a).astype(int), u


def site_map(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray,
             reps: tuple[int, int, int]) -> np.ndarray:
    """Atom index of every site: array (n, m, l, 5) from :func:`perovskite_sites`; raises
    ``ValueError`` unless the atoms fill each site exactly once (a crystal near the ideal sites)."""
    basis, cidx, _ = perovskite_sites(numbers, positions, cell, reps)
    out = np.full((*reps, 5), -1, dtype=int)
    out[cidx[:, 0], cidx[:, 1], cidx[:, 2], basis] = np.arange(len(basis))
    if len(basis) != 5 * int(np.prod(reps)) or np.any(out < 0):
        raise ValueError(f"atoms do not fill the {reps} perovskite supercell's sites one to one: "
                         "not a (near-ideal) PbTiO3 supercell of these repetitions")
    return out
