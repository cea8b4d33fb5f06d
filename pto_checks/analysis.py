"""Observables: perovskite lattice parameters with the long axis found, and sanity metrics.

Pure functions.  Lengths in Angstrom, energies in eV, stress in eV/A^3.
"""

from __future__ import annotations

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


def classify_phase(row: dict[str, Any], ensemble: str, thresholds: dict[str, Any],
                   melt: dict[str, Any]) -> str:
    """Phase of one temperature: ``unstable``, ``molten``, ``supertetragonal``, ``tetragonal``, ``cubic``.

    ``row`` holds production means: ``c_over_a``, ``P_abs`` (C/m^2), ``lindemann``, ``order``,
    and ``failure`` (None or a description).  NPT decides by c/a and, where the row carries it,
    the axis-free per-frame polar order (``P_alignment``; tetragonal when either is above its
    threshold), NVT by |P|.  The verdicts decide the same rule from confidence intervals
    (:func:`pto_checks.verdicts.phase_decision`).
    """
    if row.get("failure") or not row.get("n_samples", 1):
        return "unstable"
    if row["lindemann"] > melt["max_lindemann"] or row["order"] < melt["min_order"]:
        return "molten"
    if ensemble == "npt":
        if row["c_over_a"] >= thresholds["supertetragonal_min"]:
            return "supertetragonal"
        if row["c_over_a"] - 1 >= thresholds["tetragonal_min"]:
            return "tetragonal"
        # axis-free: a cell whose polar axis turns averages c/a to 1 while every frame is polar
        series = (row.get("stats") or {}).get("series", {})
        align = (series.get("P_alignment") or {}).get("mean")
        frame_p = (series.get("P_frame_abs") or {}).get("mean")
        n = n_cells_of(row)
        if (align is not None and frame_p is not None and n is not None and "min_polar_order" in thresholds
                and n >= thresholds.get("min_cells_polar_order", 27)):
            polar = (align >= polar_order_threshold(n, thresholds["min_polar_order"])
                     and frame_p >= polar_threshold(thresholds, row.get("born_convention")))
            return "tetragonal" if polar else "cubic"
        return "cubic"
    return "tetragonal" if row["P_abs"] >= thresholds["polar_min_c_per_m2"] else "cubic"


def transition_temperature(temperatures: list[float], phases: list[str]) -> dict[str, Any]:
    """Tc from a heating sweep: midpoint between the last polar and the first cubic temperature.

    Returns ``{"tc": K or None, "resolution": +-K, "method": text}``; ``tc`` is None where the
    sweep never goes cubic after a polar phase (or is never polar).
    """
    method = "midpoint between the last tetragonal and the first cubic temperature of the sweep"
    temps = list(temperatures)
    for i in range(1, len(temps)):
        if phases[i] == "cubic" and phases[i - 1] in ("tetragonal", "supertetragonal") and all(
            p == "cubic" for p in phases[i:]
        ):
            return {"tc": 0.5 * (temps[i - 1] + temps[i]), "resolution": 0.5 * (temps[i] - temps[i - 1]),
                    "method": method}
    return {"tc": None, "resolution": None, "method": method}


#: Units of the per-frame series analysed by :func:`run_statistics`.
SERIES_UNITS = {"a": "Angstrom", "c": "Angstrom", "c_over_a": "", "a_x": "Angstrom", "b_y": "Angstrom",
                "c_z": "Angstrom", "tetragonality_frames": "", "Px": "C/m^2", "Py": "C/m^2", "Pz": "C/m^2",
                "P_frame_abs": "C/m^2", "P_alignment": "",
                "P_local_abs": "C/m^2", "lindemann": "", "order": "", "T_measured": "K", "epot_eV": "eV"}
#: Series on which the equilibrated start is detected (the latest start wins): the potential
#: energy (relaxation from the starting cell), the cell's tetragonality and the Lindemann ratio.
#: Only measures invariant under relabelling the axes (a polar crystal whose polarization turns
#: from z to x, as it may in equilibrium, is not still relaxing), and not the polarization
#: itself: near Tc it fluctuates slowly in equilibrium, which its statistical inefficiency (and
#: so its n_eff) accounts for, rather than a later start.
EQUILIBRATION_FROM = ("epot_eV", "tetragonality_frames", "lindemann")


def _sorted_c_over_a(lens: np.ndarray) -> np.ndarray:
    """Per-frame longest length over the mean of the other two (axis-label free)."""
    srt = np.sort(lens, axis=1)
    return srt[:, 2] / (0.5 * (srt[:, 0] + srt[:, 1]))


def run_statistics(samples: list[dict[str, Any]], long_axis: int | None = None):
    """:class:`pto_checks.statistics.RunStatistics` of one temperature's samples.

    Per-frame series: ``a``, ``c``, ``c_over_a`` (long axis ``long_axis``, default: that of the
    mean lengths), the three per-cell lengths ``a_x``, ``b_y``, ``c_z``, ``tetragonality_frames``
    (per-frame longest over the mean of the other two), ``Px``, ``Py``, ``Pz``,
    ``P_frame_abs`` (per-frame |P|), ``P_local_abs``, ``P_alignment`` (per-frame |P| over the
    mean local |p|: 1 when every cell's dipole points the same way, about
    :func:`disordered_alignment` when they point at random; axis-free), ``lindemann``, ``order``, ``T_measured``
    and ``epot_eV``; plus ``P_abs``, |<P>| with its propagated error.  One production window for
    all, starting at the equilibrated start detected on :data:`EQUILIBRATION_FROM`.
    """
    from pto_checks import statistics

    lens = np.array([[s["a"], s["b"], s["c"]] for s in samples], dtype=float).reshape(-1, 3)
    if long_axis is None:
        long_axis = int(np.argmax(lens.mean(axis=0))) if len(lens) else 2
    others = [i for i in range(3) if i != long_axis]
    a_f = lens[:, others].mean(axis=1)
    c_f = lens[:, long_axis]
    pvec = np.array([[s["Px"], s["Py"], s["Pz"]] for s in samples], dtype=float).reshape(-1, 3)
    series = {"a": a_f, "c": c_f, "c_over_a": c_f / a_f, "a_x": lens[:, 0], "b_y": lens[:, 1],
              "c_z": lens[:, 2], "tetragonality_frames": _sorted_c_over_a(lens),
              "Px": pvec[:, 0], "Py": pvec[:, 1], "Pz": pvec[:, 2],
              "P_frame_abs": np.linalg.norm(pvec, axis=1)}
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
    rs = statistics.run_statistics(series, SERIES_UNITS, dt, EQUILIBRATION_FROM)
    stats = dict(rs.series)
    stats["P_abs"] = statistics.norm_statistics([stats["Px"], stats["Py"], stats["Pz"]], "P_abs")
    return statistics.RunStatistics(rs.t0, rs.n, rs.sample_interval_ps, rs.equilibration_from, stats)


def summarize_run(samples: list[dict[str, Any]], failure: dict[str, Any] | None, temperature_K: float,
                  production_fraction: float) -> dict[str, Any]:
    """Production averages of one temperature, with block-average errors (no phase: see
    :func:`classify_phase`, applied on reading so that changed thresholds need no new MD).

    a, c in Angstrom (per perovskite cell, long axis from the averaged lengths), |P| and Pz in
    C/m^2.  A run that failed keeps what it has: averages over its samples.

    Also the statistics of :func:`run_statistics` (equilibrated start, statistical inefficiency,
    n_eff, mean and standard error of every series, over the detected production window rather
    than the fixed fraction): ``row["stats"]`` (:meth:`RunStatistics.to_dict`), and flat
    ``<name>_mean``, ``<name>_sem``, ``<name>_n_eff`` for a, c, c_over_a, P_abs, Pz, P_local_abs,
    lindemann and order, ``t0_ps`` and ``production_ps``.  Computed from the samples alone, so a
    changed analysis needs no new MD (see :func:`read_samples`).
    """
    n = len(samples)
    start = int(round(n * (1 - production_fraction))) if failure is None else n // 2
    prod = samples[start:] if n else []
    row: dict[str, Any] = {"T_K": float(temperature_K), "n_samples": len(prod), "failure": failure}
    if prod:
        lens = np.array([[s["a"], s["b"], s["c"]] for s in prod])
        # long axis from the production-averaged lengths: per-frame max(a, b, c) is biased above
        # the mean for a fluctuating cubic cell (that per-frame value is kept as c_over_a_frames)
        axis = int(np.argmax(lens.mean(axis=0)))
        others = [i for i in range(3) if i != axis]
        a_f = lens[:, others].mean(axis=1)
        c_f = lens[:, axis]
        srt = np.sort(lens, axis=1)
        row["long_axis"] = axis
        row["c_over_a_frames"] = float(np.mean(srt[:, 2] / (0.5 * (srt[:, 0] + srt[:, 1]))))
        for name, series in (("a", a_f), ("c", c_f),
                             ("Px", np.array([s["Px"] for s in prod])),
                             ("Py", np.array([s["Py"] for s in prod])),
                             ("Pz", np.array([s["Pz"] for s in prod])),
                             ("P_local_abs", np.array([s["P_local_abs"] for s in prod])),
                             ("T_measured", np.array([s["T_K"] for s in prod])),
                             ("lindemann", np.array([s["lindemann"] for s in prod])),
                             ("order", np.array([s["order"] for s in prod]))):
            row[name], row[f"{name}_err"] = block_average(series)
        row["c_over_a"] = row["c"] / row["a"]
        rel = np.hypot(row["c_err"] / row["c"], row["a_err"] / row["a"]) if len(prod) > 1 else float("nan")
        row["c_over_a_err"] = float(row["c_over_a"] * rel)
        pvec = np.array([[s["Px"], s["Py"], s["Pz"]] for s in prod]).mean(axis=0)
        row["P"] = pvec.tolist()
        row["P_abs"] = float(np.linalg.norm(pvec))
        # error of |P| from the components' errors (linear propagation; its own error bar, not Pz's)
        perr = np.array([row["Px_err"], row["Py_err"], row["Pz_err"]])
        row["P_abs_err"] = (float(np.sqrt(np.sum((pvec * perr) ** 2)) / row["P_abs"]) if row["P_abs"] > 0
                            else float(np.linalg.norm(perr)))
        rs = run_statistics(samples, axis)
        row["stats"] = rs.to_dict()
        row["t0_ps"] = rs.t0_ps
        row["production_ps"] = rs["c_over_a"].production_ps
        for name in ("a", "c", "c_over_a", "P_abs", "Pz", "P_local_abs", "lindemann", "order"):
            if name in rs.series:
                st = rs[name]
                row[f"{name}_mean"], row[f"{name}_sem"], row[f"{name}_n_eff"] = st.mean, st.sem, st.n_eff
    else:
        row.update(a=float("nan"), c=float("nan"), c_over_a=float("nan"), Pz=float("nan"),
                   P_abs=float("nan"), lindemann=float("nan"), order=float("nan"))
    return row


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


def disordered_alignment(n_cells: int) -> float:
    """Expected per-frame alignment ``|mean p| / mean |p|`` of ``n_cells`` local dipoles of equal
    length pointing in independent, isotropically random directions: sqrt(8 / (3 pi)) / sqrt(n)
    (the mean of a Maxwell distribution; 0.18 for 27 cells, 0.33 for 8).  The baseline a
    disordered (cubic, paraelectric) cell of that size gives; 1 is full order."""
    return float(np.sqrt(8.0 / (3.0 * np.pi)) / np.sqrt(max(int(n_cells), 1)))


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
