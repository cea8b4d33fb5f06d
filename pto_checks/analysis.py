"""Observables: perovskite lattice parameters with the long axis found, and sanity metrics.

Pure functions.  Lengths in Angstrom, energies in eV, stress in eV/A^3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.stress import full_3x3_to_voigt_6_stress

from pto_checks.structures import IDEAL_SITES, O_BOND_AXIS  # noqa: F401  (IDEAL_SITES re-exported)


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


def bulk_modulus(atoms: Atoms, calc: Calculator, max_strain: float = 0.03, points: int = 7) -> tuple[float, float]:
    """(B0 in GPa, V0 in A^3/atom) from a Birch-Murnaghan fit (``ase.eos``) of E(V).

    The cell is scaled uniformly by linear strains in [-max_strain, +max_strain] (fractional
    coordinates kept: for the cubic sanity crystals every position is fixed by symmetry). Energy
    differences at fixed composition: any constant energy per element cancels.
    """
    from ase import units
    from ase.eos import EquationOfState

    work = atoms.copy()
    work.calc = calc
    cell = atoms.cell.array.copy()
    volumes, energies = [], []
    for eps in np.linspace(-max_strain, max_strain, points):
        work.set_cell(cell * (1.0 + eps), scale_atoms=True)
        volumes.append(work.get_volume())
        energies.append(work.get_potential_energy())
    v0, _, b0 = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    return float(b0 / units.GPa), float(v0 / len(atoms))


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


# ---------------------------------------------------------------------------------------------
# Finite-temperature observables.  Supercells are n x m x l repeats of the 5-atom cell.  Site
# types (Pb, Ti, O_z, O_y, O_x) come from the structure (species and geometry,
# :func:`pto_checks.structures.perovskite_sites`), not from the atom order.

_O_PAR_AXIS = O_BOND_AXIS
E_PER_A2_TO_C_PER_M2 = 16.02176634  # 1 e/A^2 in C/m^2
#: The repeated 5-atom cell's atomic numbers (Pb, Ti, O, O, O): the atom order assumed when a
#: caller gives no atomic numbers.
_CELL_NUMBERS = np.array([82, 22, 8, 8, 8])


def born_charge_conventions() -> dict[str, dict[str, Any]]:
    """The Born-charge sets of ``reference_data/pto.toml`` (name -> values and source)."""
    from pto_checks.reference import load_reference

    z = load_reference()["born_charges"]
    return {k: v for k, v in z.items() if isinstance(v, dict)}


def default_born_convention() -> str:
    from pto_checks.reference import load_reference

    return str(load_reference()["born_charges"]["default"])


def born_charge_tensors(convention: str | None = None) -> np.ndarray:
    """Diagonal Born effective charge tensors (5, 3), e, of the site types Pb, Ti, O_z, O_y, O_x,
    made neutral per direction; ``convention`` names a set of ``[born_charges]`` (default: its
    ``default``, Zhong-King-Smith-Vanderbilt 1994)."""
    sets = born_charge_conventions()
    name = convention or default_born_convention()
    if name not in sets:
        raise ValueError(f"unknown Born-charge convention {name!r}; known: {', '.join(sets)}")
    z = sets[name]
    diag = np.zeros((5, 3))
    diag[0] = z["Pb"]
    diag[1] = z["Ti"]
    for b, ax in _O_PAR_AXIS.items():
        diag[b] = z["O_perp"]
        diag[b, ax] = z["O_par"]
    diag -= diag.sum(axis=0) / 5.0  # remove the published set's small residual
    return diag


def polarization_scale(convention: str, relative_to: str | None = None) -> float:
    """P_z under ``convention`` over P_z under ``relative_to`` (default convention) for the
    tetragonal reference displacements (``structures.tetragonal(a=3.90, c=4.15)``)."""
    from pto_checks import structures as _s

    cell = _s.tetragonal(a=3.90, c=4.15)
    args = (cell.positions, cell.cell.array, (1, 1, 1))
    p = polarization(*args, numbers=cell.numbers, convention=convention)["P"][2]
    p0 = polarization(*args, numbers=cell.numbers, convention=relative_to)["P"][2]
    return float(p / p0)


def polar_threshold(thresholds: dict[str, Any], convention: str | None = None) -> float:
    """The polar threshold (C/m^2) of ``tolerances.phase`` converted to ``convention``: it is
    stated in ``polar_min_convention``; other conventions scale it by :func:`polarization_scale`."""
    thr = float(thresholds["polar_min_c_per_m2"])
    stated = thresholds.get("polar_min_convention", default_born_convention())
    conv = convention or default_born_convention()
    return thr if conv == stated else thr * polarization_scale(conv, relative_to=stated)


def site_assignment(positions: np.ndarray, cell: np.ndarray, reps: tuple[int, int, int],
                    numbers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Assign each atom to the nearest ideal cubic site of its type; return (u, cell_index, basis).

    ``u`` (Angstrom, (N, 3)): displacement from that site, after removing the rigid translation
    that puts the first Pb on its site (so results do not depend on the origin).  ``cell_index``
    ((N, 3) ints): the unit cell of that site.  ``basis``: 0 Pb, 1 Ti, 2 O_z, 3 O_y, 4 O_x, from
    the species and the geometry (:func:`pto_checks.structures.perovskite_sites`), so any atom
    order works.  Works for any wrapping of the atoms into the cell.

    ``numbers``: atomic numbers.  Without them the atoms are taken to be in the order of
    repeated (Pb, Ti, O, O, O) cells (ase.Atoms.repeat), which a caller should not rely on: pass
    ``atoms.numbers``.
    """
    from pto_checks.structures import perovskite_sites

    if numbers is None:
        numbers = np.resize(_CELL_NUMBERS, len(positions))
    basis, cidx, u = perovskite_sites(numbers, positions, cell, reps)
    return u, cidx, basis


def polarization(positions: np.ndarray, cell: np.ndarray, reps: tuple[int, int, int],
                 assignment: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 numbers: np.ndarray | None = None, convention: str | None = None) -> dict[str, Any]:
    """Polarization from Born effective charges, in C/m^2.

    ``P``: the supercell average (Px, Py, Pz) = sum_i Z*_i u_i / V (equal to the mean of the local
    dipoles of the Ti-centred cells).  ``local_abs``: mean |p| of the Ti-centred cells (Ti weight 1,
    its six O 1/2, its eight Pb 1/8), which stays large in a polar crystal with domains.
    Independent of the origin (charges neutral), of wrapping (nearest-site assignment) and of the
    atom order (site types from species and geometry; pass ``numbers``).  ``convention``: the
    Born-charge set (:func:`born_charge_tensors`).
    """
    reps_a = np.asarray(reps)
    u, cidx, basis = assignment if assignment is not None else site_assignment(positions, cell, reps, numbers)
    zb = born_charge_tensors(convention)
    vol = abs(np.linalg.det(cell))
    dip = zb[basis] * u  # (N, 3), e*A
    p_total = dip.sum(axis=0) / vol * E_PER_A2_TO_C_PER_M2
    grid = np.zeros((*reps_a, 5, 3))
    np.add.at(grid, (cidx[:, 0], cidx[:, 1], cidx[:, 2], basis), dip)
    local = grid[:, :, :, 1, :].copy()
    local += 0.5 * (grid[:, :, :, 2, :] + np.roll(grid[:, :, :, 2, :], -1, axis=2))  # O_z at z and z+1
    local += 0.5 * (grid[:, :, :, 3, :] + np.roll(grid[:, :, :, 3, :], -1, axis=1))
    local += 0.5 * (grid[:, :, :, 4, :] + np.roll(grid[:, :, :, 4, :], -1, axis=0))
    pb = grid[:, :, :, 0, :]
    for sx in (0, -1):
        for sy in (0, -1):
            for sz in (0, -1):
                local += 0.125 * np.roll(pb, (sx, sy, sz), axis=(0, 1, 2))
    v_cell = vol / np.prod(reps_a)
    p_local = local.reshape(-1, 3) / v_cell * E_PER_A2_TO_C_PER_M2
    return {"P": p_total, "local_abs": float(np.mean(np.linalg.norm(p_local, axis=1)))}


def order_metrics(positions: np.ndarray, cell: np.ndarray, reps: tuple[int, int, int],
                  assignment: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                  numbers: np.ndarray | None = None) -> dict[str, float]:
    """Crystal order: Lindemann ratio and fraction of atoms within 1 A of their site.

    Each species' mean displacement (the polar offset, and drift) is removed first.  The
    Lindemann ratio is the rms displacement over the nearest-neighbour (Ti-O) distance a/2.
    """
    u, _, basis = assignment if assignment is not None else site_assignment(positions, cell, reps, numbers)
    u = u.copy()
    for b in np.unique(basis):  # remove each site type's mean offset
        u[basis == b] -= u[basis == b].mean(axis=0)
    r = np.linalg.norm(u, axis=1)
    a = np.mean(unit_cell_lengths(cell, reps))
    return {"lindemann": float(np.sqrt(np.mean(r**2)) / (a / 2)), "order": float(np.mean(r < 1.0))}


def min_distance(positions: np.ndarray, cell: np.ndarray, cutoff: float = 1.5) -> float:
    """Smallest interatomic distance (Angstrom) under periodic boundary conditions, searched up to
    ``cutoff`` (returns ``cutoff`` when no pair is closer).

    Orthorhombic cells (all MD cells here: diagonal masks) use a periodic k-d tree (~1 ms for 625
    atoms); other cells fall back to ASE's neighbour list.
    """
    cell = np.asarray(cell, dtype=float)
    positions = np.asarray(positions, dtype=float)
    if np.allclose(cell, np.diag(np.diag(cell))) and np.all(np.diag(cell) > 2 * cutoff):
        from scipy.spatial import cKDTree

        lengths = np.diag(cell)
        wrapped = np.mod(positions, lengths)
        wrapped[wrapped >= lengths] = 0.0  # np.mod can return exactly L for tiny negatives
        d, _ = cKDTree(wrapped, boxsize=lengths).query(wrapped, k=2, distance_upper_bound=cutoff)
        return float(min(d[:, 1].min(), cutoff))
    from ase.neighborlist import primitive_neighbor_list

    d = primitive_neighbor_list("d", (True, True, True), cell, positions, cutoff)
    return float(d.min()) if len(d) else float(cutoff)


def block_average(x: np.ndarray, n_blocks: int = 5) -> tuple[float, float]:
    """Mean and its standard error from ``n_blocks`` block averages (fewer if too few samples)."""
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan")
    nb = max(1, min(n_blocks, len(x)))
    blocks = np.array([b.mean() for b in np.array_split(x, nb)])
    err = float(blocks.std(ddof=1) / np.sqrt(nb)) if nb > 1 else float("nan")
    return float(x.mean()), err


#: Units of the per-frame series analysed by :func:`run_statistics`.
SERIES_UNITS = {"a": "Angstrom", "c": "Angstrom", "c_over_a": "", "a_x": "Angstrom", "b_y": "Angstrom",
                "c_z": "Angstrom", "tetragonality_frames": "", "Px": "C/m^2", "Py": "C/m^2", "Pz": "C/m^2",
                "P_frame_abs": "C/m^2", "Pz_frame_abs": "C/m^2", "P_alignment": "",
                "P_local_abs": "C/m^2", "lindemann": "", "order": "", "T_measured": "K", "epot_eV": "eV"}
#: Series on which the equilibrated start is detected: the potential energy only.  It relaxes
#: with the cell and the atoms from the starting state, and no check decides on it, so the window
#: is never chosen by looking at a decided quantity's own error (choosing the start on c/a or the
#: Lindemann ratio themselves prefers windows whose inefficiency comes out small: measured
#: coverage of "95 %" intervals 0.57-0.90, benchmarks/calibration.md).  A run without a
#: potential energy (a user's CSV) discards the fixed fraction ``1 - production_fraction``.
EQUILIBRATION_FROM = ("epot_eV",)


def _sorted_c_over_a(lens: np.ndarray) -> np.ndarray:
    """Per-frame longest length over the mean of the other two (axis-label free)."""
    srt = np.sort(lens, axis=1)
    return srt[:, 2] / (0.5 * (srt[:, 0] + srt[:, 1]))


def production_start(samples: list[dict[str, Any]], fixed_discard: float = 0.5) -> int:
    """Index of the first production sample: the equilibrated start detected on
    :data:`EQUILIBRATION_FROM` (the potential energy), else the fixed fraction ``fixed_discard``."""
    from pto_checks import statistics

    n = len(samples)
    if n and all(k in samples[0] for k in EQUILIBRATION_FROM):
        return max(statistics.equilibration_start([s[k] for s in samples]) for k in EQUILIBRATION_FROM)
    return int(math.floor(n * min(max(fixed_discard, 0.0), 1.0)))


def run_statistics(samples: list[dict[str, Any]], long_axis: int | None = None, fixed_discard: float = 0.5,
                   t0: int | None = None):
    """:class:`pto_checks.statistics.RunStatistics` of one temperature's samples.

    Per-frame series: ``a``, ``c``, ``c_over_a`` (long axis ``long_axis``, default: that of the
    mean lengths over the production window), the three per-cell lengths ``a_x``, ``b_y``,
    ``c_z``, ``tetragonality_frames`` (per-frame longest over the mean of the other two), ``Px``,
    ``Py``, ``Pz``, ``P_frame_abs`` (per-frame |P|), ``Pz_frame_abs`` (per-frame |Pz|),
    ``P_local_abs``, ``P_alignment`` (per-frame |P| over the mean local |p|: 1 when every cell's
    dipole points the same way; axis-free), ``lindemann``, ``order``, ``T_measured`` and
    ``epot_eV``; plus ``P_abs``, |<P>| with its propagated error, and the Binder cumulants
    ``P_binder`` (of the vector P) and ``Pz_binder`` (of Pz), 0 for a Gaussian (disordered)
    distribution, 1 for an ordered one (:func:`pto_checks.statistics.binder_statistics`).  One
    production window for all, from :func:`production_start` (or ``t0``).
    """
    from pto_checks import statistics

    if t0 is None:
        t0 = production_start(samples, fixed_discard)
    lens = np.array([[s["a"], s["b"], s["c"]] for s in samples], dtype=float).reshape(-1, 3)
    if long_axis is None:
        prod = lens[min(t0, max(len(lens) - 1, 0)):]
        long_axis = int(np.argmax(prod.mean(axis=0))) if len(prod) else 2
    others = [i for i in range(3) if i != long_axis]
    a_f = lens[:, others].mean(axis=1)
    c_f = lens[:, long_axis]
    pvec = np.array([[s["Px"], s["Py"], s["Pz"]] for s in samples], dtype=float).reshape(-1, 3)
    series = {"a": a_f, "c": c_f, "c_over_a": c_f / a_f, "a_x": lens[:, 0], "b_y": lens[:, 1],
              "c_z": lens[:, 2], "tetragonality_frames": _sorted_c_over_a(lens),
              "Px": pvec[:, 0], "Py": pvec[:, 1], "Pz": pvec[:, 2],
              "P_frame_abs": np.linalg.norm(pvec, axis=1), "Pz_frame_abs": np.abs(pvec[:, 2])}
    for key, name in (("P_local_abs", "P_local_abs"), ("lindemann", "lindemann"), ("order", "order"),
                      ("T_K", "T_measured"), ("epot_eV", "epot_eV")):
        if samples and key in samples[0]:
            series[name] = np.array([s[key] for s in samples], dtype=float)
    if "P_local_abs" in series:
        # per-frame alignment of the local dipoles, |mean p| / mean |p| (axis-free polar order)
        local = series["P_local_abs"]
        series["P_alignment"] = np.divide(series["P_frame_abs"], local, out=np.zeros_like(local),
                                          where=local > 0)
    times = np.array([s.get("time_ps", np.nan) for s in samples], dtype=float)
    dt = float(np.median(np.diff(times))) if len(times) > 1 else float("nan")
    rs = statistics.run_statistics(series, SERIES_UNITS, dt, EQUILIBRATION_FROM, fixed_discard, t0=t0)
    stats = dict(rs.series)
    stats["P_abs"] = statistics.norm_statistics([stats["Px"], stats["Py"], stats["Pz"]], "P_abs")
    if len(pvec):
        stats["P_binder"] = statistics.binder_statistics(pvec, rs.t0, dt, "P_binder")
        stats["Pz_binder"] = statistics.binder_statistics(pvec[:, 2:], rs.t0, dt, "Pz_binder")
    return statistics.RunStatistics(rs.t0, rs.n, rs.sample_interval_ps, rs.equilibration_from, stats)


#: the row entries summarised from the statistics (mean as ``name``, its decisive error as ``name_err``)
ROW_SERIES = ("a", "c", "c_over_a", "Px", "Py", "Pz", "P_abs", "P_frame_abs", "Pz_frame_abs", "P_alignment",
              "P_local_abs", "T_measured", "lindemann", "order")


def summarize_run(samples: list[dict[str, Any]], failure: dict[str, Any] | None, temperature_K: float,
                  production_fraction: float) -> dict[str, Any]:
    """The row of one temperature, summarised from exactly the samples its decisions use: the
    production window of :func:`run_statistics` (equilibrated start detected on the potential
    energy; without one, after the fixed fraction ``1 - production_fraction``).

    Each of :data:`ROW_SERIES` as ``name`` (the window's mean) and ``name_err`` (its decisive
    standard error, :class:`pto_checks.statistics.SeriesStats`); ``P`` = [Px, Py, Pz];
    ``c_over_a_frames`` (per-frame longest over the other two); ``row["stats"]``
    (:meth:`RunStatistics.to_dict`), flat ``<name>_mean``, ``<name>_sem``, ``<name>_n_eff``,
    ``t0_ps``, ``production_ps`` and ``n_samples`` (samples in the window).  No phase: see
    :func:`pto_checks.phase.decide_phase`, applied on reading so that changed thresholds need no
    new MD.  Units: Angstrom, C/m^2, K.
    """
    row: dict[str, Any] = {"T_K": float(temperature_K), "n_samples": 0, "failure": failure}
    if not samples:
        row.update({k: float("nan") for k in ROW_SERIES})
        return row
    rs = run_statistics(samples, fixed_discard=1.0 - production_fraction)
    axis_lens = np.array([[s["a"], s["b"], s["c"]] for s in samples[rs.t0:]])
    row["long_axis"] = int(np.argmax(axis_lens.mean(axis=0)))
    row["n_samples"] = rs.n - rs.t0
    for name in ROW_SERIES:
        if name in rs.series:
            st = rs[name]
            row[name], row[f"{name}_err"] = st.mean, st.sem
    row["c_over_a_frames"] = rs["tetragonality_frames"].mean
    row["P"] = [row["Px"], row["Py"], row["Pz"]]
    row["stats"] = rs.to_dict()
    row["t0_ps"] = rs.t0_ps
    row["production_ps"] = rs["c_over_a"].production_ps
    for name in ("a", "c", "c_over_a", "P_abs", "Pz", "P_local_abs", "lindemann", "order"):
        if name in rs.series:
            st = rs[name]
            row[f"{name}_mean"], row[f"{name}_sem"], row[f"{name}_n_eff"] = st.mean, st.sem, st.n_eff
    return row


def combine_replica_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from the rows of R independent runs at one temperature (``md.replicas``): every
    series' statistics combined by :func:`pto_checks.statistics.combine_replicas` (the interval
    from the spread between replicas, Student-t with R - 1 dof, or the within-run estimate when
    that is wider), the row's values from them.  A replica that blew up makes the row that
    replica's (unstable).  ``replicas``: R; ``folders``: the replicas' cache folders."""
    from pto_checks import statistics

    if len(rows) == 1:
        return rows[0]
    failed = [r for r in rows if r.get("failure")]
    if failed:
        return dict(failed[0], replicas=len(rows))
    names = set.intersection(*(set((r.get("stats") or {}).get("series", {})) for r in rows))
    combined = {k: statistics.combine_replicas([statistics.SeriesStats(**r["stats"]["series"][k]) for r in rows])
                for k in sorted(names)}
    out = dict(rows[0])
    out["stats"] = dict(rows[0]["stats"], t0=max(r["stats"]["t0"] for r in rows), replicas=len(rows),
                        series={k: v.to_dict() for k, v in combined.items()})
    for name in ROW_SERIES:
        if name in combined:
            out[name], out[f"{name}_err"] = combined[name].mean, combined[name].sem
    if "tetragonality_frames" in combined:
        out["c_over_a_frames"] = combined["tetragonality_frames"].mean
    out["P"] = [out.get("Px"), out.get("Py"), out.get("Pz")]
    out["n_samples"] = sum(r.get("n_samples", 0) for r in rows)
    out["replicas"] = len(rows)
    out["cache_hit"] = all(r.get("cache_hit", False) for r in rows)
    out["folders"] = [r.get("folder") for r in rows]
    return out


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """The samples of one MD run from its ``samples.csv`` (numbers as floats, ``step`` as int), so
    :func:`summarize_run` can be recomputed on reading."""
    import csv

    out = []
    with Path(path).open(newline="") as fh:
        for rec in csv.DictReader(fh):
            row: dict[str, Any] = {k: float(v) for k, v in rec.items()}
            if "step" in row:
                row["step"] = int(row["step"])
            out.append(row)
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    """The per-temperature table of a sweep, as text."""
    def num(x: Any, spec: str) -> str:  # a quantity a run did not measure is '-', never 'nan'
        width = int(spec.split(".")[0])
        return format(x, spec) if isinstance(x, (int, float)) and np.isfinite(x) else "-".rjust(width)

    out = ["   T (K)    a (A)    c (A)     c/a   |P| (C/m2)  Pz (C/m2)  phase"]
    for r in rows:
        out.append(f"  {num(r['T_K'], '6.0f')}  {num(r['a'], '7.4f')}  {num(r['c'], '7.4f')}  "
                   f"{num(r['c_over_a'], '6.4f')}  {num(r['P_abs'], '10.3f')}  {num(r['Pz'], '9.3f')}  {r['phase']}"
                   + (f" ({r['failure']['reason']} at step {r['failure']['step']})" if r.get("failure") else ""))
    return "\n".join(out)


#: The per-frame alignment of a disordered cell over that of independent dipoles: the local
#: dipoles of :func:`polarization` share their Pb and O atoms (each Pb in eight cells, each O in
#: two), so independent atomic displacements give correlated local dipoles.  Measured with this
#: module's own :func:`polarization` on every atom displaced independently at random (Gaussian,
#: 0.1 A): 1.310 (2^3), 1.319 (3^3), 1.328 (4^3), 1.316 (5^3), 3000 frames each
#: (tests/harness/test_phase_rule.py::test_disordered_baseline_is_measured_for_our_dipoles).
SHARED_ATOMS_FACTOR = 1.32


def disordered_alignment(n_cells: int) -> float:
    """Expected per-frame alignment ``|mean p| / mean |p|`` of the ``n_cells`` local dipoles of a
    disordered cell (every atom displaced independently at random), for this module's dipoles
    that share their atoms: :data:`SHARED_ATOMS_FACTOR` times the independent-dipole value
    sqrt(8 / (3 pi)) / sqrt(n) (0.23 for 27 cells, 0.43 for 8).  1 is full order."""
    return float(SHARED_ATOMS_FACTOR * np.sqrt(8.0 / (3.0 * np.pi)) / np.sqrt(max(int(n_cells), 1)))


def polar_order_threshold(n_cells: int, min_polar_order: float) -> float:
    """The per-frame alignment above which a cell of ``n_cells`` counts as polar: the fraction
    ``min_polar_order`` of the way from the disordered baseline (:func:`disordered_alignment`)
    to full order (1)."""
    b = disordered_alignment(n_cells)
    return b + float(min_polar_order) * (1.0 - b)


def n_cells_of(row: dict[str, Any]) -> int | None:
    """Perovskite cells of the supercell a sweep row ran on (from its task), or None."""
    sc = (row.get("task") or {}).get("supercell")
    if sc is None:
        return None
    if isinstance(sc, (list, tuple)):
        return int(np.prod(sc))
    return int(sc) ** 3
