"""Conservation tier: is the model's force the gradient of its energy, its stress the strain
derivative, its energy surface free of steps, and does velocity Verlet conserve its energy?

Four measurements on small PbTiO3 cells (5 atoms, and a 40-atom 2x2x2 thermal snapshot), each a
typed observable; units are in the field names (eV, Angstrom, GPa, meV/f.u., meV/atom/ps):

* :func:`path_consistency`: along a random smooth path x(s) = x0 + s d1 + s^2 d2 (s in [0, 1]), the
  energy change E(s) - E(0) against the work of the model's forces, -int F . dx (trapezoid rule on
  the path's points), as a fraction of the total variation of E along the path.
* :func:`stress_consistency`: central differences (1/V) dE/d(strain) under the six symmetric Voigt
  strains (fractional coordinates fixed, as ASE's ``calculate_numerical_stress``) against the
  model's stress, in GPa.
* :func:`energy_scan` + :func:`find_steps`: fine scans of E (per formula unit) along c (fixed
  fractional coordinates), volume and the polar mode; a step is a difference between neighbouring
  points far from what the neighbouring differences predict (a quadratic through two differences
  on each side), located and named by the pair distance that crosses one of the model's cutoffs
  there (:func:`model_cutoffs`, :func:`cutoff_crossings`).
* :func:`nve_run`: velocity Verlet from Maxwell-Boltzmann velocities; drift (linear fit of the
  total energy) with its standard error, and the fluctuation about the fit, against the bound of
  :func:`verlet_fluctuation_bound` (velocity Verlet's energy error scales with dt^2).

Limits and their reasoning: ``reference_data/pto.toml [tolerances.conservation_*]``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator

from pto_checks import structures

#: bump when a change of this module changes what it computes (part of every cache key)
STAGE_VERSION = 1

#: k_B in meV/K
KB_MEV_PER_K = units.kB * 1000.0


@dataclass(frozen=True)
class ConservationSettings:
    """What the tier computes (the same for every protocol: it is cheap by design).

    ``path_points``: points per path; ``path_rms_A``: rms displacement per atom at the path's end;
    ``snapshot_rms_A``: Gaussian displacement (rms per Cartesian component) of the 40-atom
    thermal snapshot (the 300 K PBEsol AIMD frames of the accuracy tier have 0.06-0.1 A);
    ``stress_strain``: the finite-difference strain; ``volume_changes``: relative volumes of the
    cubic cell; ``c_over_a``: tetragonal cells at the PBEsol tetragonal volume; ``scan_points``
    per scan and the scans' ranges (c/a at fixed a and fractional coordinates; relative volume
    of the cubic cell; polar-mode amplitude, 0 = centrosymmetric, 1 = PBEsol P4mm); an interval
    whose residual exceeds ``refine_above_meV_per_fu`` is bisected ``refine_levels`` times; NVE:
    ``nve_timestep_fs``, ``nve_steps``, ``nve_repeat`` (supercell of the MD start cell).
    """

    seed: int = 20250311
    path_points: int = 9
    path_rms_A: float = 0.08
    snapshot_rms_A: float = 0.08
    snapshot_repeat: tuple[int, int, int] = (2, 2, 2)
    stress_strain: float = 5e-3
    volume_changes: tuple[float, ...] = (-0.05, 0.05)
    c_over_a: tuple[float, ...] = (1.0, 1.08, 1.16, 1.24)
    scan_points: int = 25
    scan_c_over_a: tuple[float, float] = (0.98, 1.26)
    scan_volume: tuple[float, float] = (-0.08, 0.08)
    scan_polar: tuple[float, float] = (-0.25, 1.5)
    refine_above_meV_per_fu: float = 0.25
    refine_levels: int = 4
    nve_timestep_fs: float = 2.0
    nve_steps: int = 200
    nve_repeat: tuple[int, int, int] = (1, 1, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def part(self, name: str) -> dict[str, Any]:
        """The fields that part ``name`` (energy_force, energy_stress, energy_scans, nve) depends on:
        its cache key, so that changing one part's settings recomputes that part only."""
        return {k: getattr(self, k) for k in PART_FIELDS[name]}


#: the settings each cached part depends on (:meth:`ConservationSettings.part`)
PART_FIELDS = {
    "energy_force": ("seed", "path_points", "path_rms_A", "snapshot_rms_A", "snapshot_repeat"),
    "energy_stress": ("seed", "stress_strain", "volume_changes", "c_over_a", "snapshot_rms_A", "snapshot_repeat"),
    "energy_scans": ("scan_points", "scan_c_over_a", "scan_volume", "scan_polar", "refine_above_meV_per_fu",
                     "refine_levels"),
    "nve": ("seed", "nve_timestep_fs", "nve_steps", "nve_repeat"),
}


# --------------------------------------------------------------------------------------------
# cells


def thermal_snapshot(settings: ConservationSettings) -> Atoms:
    """The 2x2x2 PbTiO3 cell at the MD start lattice (a 3.90, c 4.15 A) with Gaussian displacements
    of ``snapshot_rms_A`` per component (seeded): a thermal-like configuration, reproducible."""
    atoms = structures.supercell(structures.tetragonal(a=3.90, c=4.15), *settings.snapshot_repeat)
    rng = np.random.default_rng(settings.seed)
    atoms.positions += settings.snapshot_rms_A * rng.standard_normal(atoms.positions.shape)
    return atoms


def path_cells(settings: ConservationSettings) -> dict[str, Atoms]:
    """Start cells of the energy-force paths: PBEsol tetragonal and cubic, the thermal snapshot."""
    return {"tetragonal": structures.tetragonal(), "cubic": structures.cubic(),
            "thermal_snapshot": thermal_snapshot(settings)}


def stress_cells(settings: ConservationSettings) -> dict[str, Atoms]:
    """Cells of the energy-stress check: cubic at each relative volume change, tetragonal at each
    c/a (PBEsol fractional coordinates, PBEsol tetragonal volume), and the thermal snapshot."""
    out: dict[str, Atoms] = {}
    cub = structures.cubic()
    for dv in settings.volume_changes:
        a = cub.cell[0, 0] * (1 + dv) ** (1 / 3)
        out[f"cubic V{dv:+.0%}"] = structures.cubic(a)
    tet = structures.tetragonal()
    v0 = tet.get_volume()
    for r in settings.c_over_a:
        a = (v0 / r) ** (1 / 3)
        out[f"tetragonal c/a {r:.2f}"] = structures.tetragonal(a=a, c=r * a)
    out["thermal_snapshot"] = thermal_snapshot(settings)
    return out


# --------------------------------------------------------------------------------------------
# energy-force consistency


@dataclass(frozen=True)
class PathConsistency:
    """Energy change along a path against the work of the forces.

    ``s``: path parameter of each point; ``energy_change_eV``: E(s) - E(0); ``force_work_eV``:
    -int_0^s F . dx (:func:`cumulative_simpson`); ``max_mismatch_eV``: max |difference| at the
    Simpson points (even indices); ``total_variation_eV``:
    sum of |E(s_k+1) - E(s_k)|; ``relative_error``: their ratio; ``end_rms_displacement_A``: rms
    displacement per atom at s = 1.
    """

    cell: str
    n_atoms: int
    s: list[float]
    energy_change_eV: list[float]
    force_work_eV: list[float]
    max_mismatch_eV: float
    total_variation_eV: float
    relative_error: float
    end_rms_displacement_A: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def path_consistency(atoms: Atoms, calc: Calculator, name: str, rms_A: float, points: int,
                     rng: np.random.Generator) -> PathConsistency:
    """E along x(s) = x0 + s d1 + s^2 d2 (d1, d2 random, Gaussian; |d1 + d2| rms ``rms_A`` per
    atom) at ``points`` (odd) equally spaced s in [0, 1], against the work of the forces (Simpson)."""
    n = len(atoms)
    d1 = rng.standard_normal((n, 3))
    d2 = 0.5 * rng.standard_normal((n, 3))
    end = d1 + d2
    scale = rms_A / np.sqrt(np.mean(np.sum(end**2, axis=1)))
    d1, d2 = d1 * scale, d2 * scale
    s = np.linspace(0.0, 1.0, points)
    work = atoms.copy()
    work.calc = calc
    x0 = atoms.positions.copy()
    e, g = [], []
    for sk in s:
        work.positions = x0 + sk * d1 + sk**2 * d2
        e.append(float(work.get_potential_energy()))
        tangent = d1 + 2 * sk * d2
        g.append(-float(np.sum(work.get_forces() * tangent)))  # dE/ds predicted by the forces
    e_arr, g_arr = np.array(e), np.array(g)
    de = e_arr - e_arr[0]
    w = cumulative_simpson(g_arr, s)
    even = slice(0, None, 2)
    mismatch = float(np.max(np.abs(de[even] - w[even])))
    tv = float(np.sum(np.abs(np.diff(e_arr))))
    return PathConsistency(name, n, s.tolist(), de.tolist(), w.tolist(), mismatch, tv,
                           mismatch / tv if tv > 0 else math.inf,
                           float(np.sqrt(np.mean(np.sum(end**2, axis=1))) * scale))


def cumulative_simpson(g: np.ndarray, s: np.ndarray) -> np.ndarray:
    """int_0^s g ds at every point of an equally spaced grid: Simpson's rule at the even points
    (exact for cubic g, error O(h^4)), the trapezoid rule from the last even point at the odd ones."""
    h = float(s[1] - s[0])
    out = np.zeros(len(g))
    for k in range(2, len(g), 2):
        out[k] = out[k - 2] + h / 3 * (g[k - 2] + 4 * g[k - 1] + g[k])
    for k in range(1, len(g), 2):
        out[k] = out[k - 1] + h / 2 * (g[k - 1] + g[k])
    return out


def energy_force_consistency(calc: Calculator, settings: ConservationSettings) -> list[PathConsistency]:
    """One random smooth path from each of :func:`path_cells` (seeded)."""
    rng = np.random.default_rng(settings.seed + 1)
    return [path_consistency(a, calc, name, settings.path_rms_A, settings.path_points, rng)
            for name, a in path_cells(settings).items()]


# --------------------------------------------------------------------------------------------
# energy-stress consistency


@dataclass(frozen=True)
class StressConsistency:
    """The model's stress against central differences of its energy (Voigt xx yy zz yz xz xy, GPa;
    positive = tensile, ASE's sign)."""

    cell: str
    n_atoms: int
    model_GPa: list[float]
    numeric_GPa: list[float]
    max_abs_error_GPa: float
    strain: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def numerical_stress_voigt(atoms: Atoms, calc: Calculator, strain: float) -> np.ndarray:
    """(1/V) dE/d(strain) (Voigt, eV/A^3) by central differences of symmetric strains, fractional
    coordinates fixed: the construction of ASE's ``Calculator.calculate_numerical_stress``, with a
    strain large enough for float32 energies."""
    work = atoms.copy()
    work.calc = calc
    cell = atoms.cell.array.copy()
    vol = atoms.get_volume()
    sigma = np.zeros((3, 3))
    for i in range(3):
        for j in range(i, 3):
            e = []
            for sign in (+1, -1):
                eps = np.eye(3)
                eps[i, j] += sign * strain
                if i != j:
                    eps[j, i] += sign * strain
                work.set_cell(cell @ eps, scale_atoms=True)
                e.append(float(work.get_potential_energy()))
            d = (e[0] - e[1]) / (2 * strain) / vol
            sigma[i, j] = sigma[j, i] = d if i == j else d / 2
    return sigma.flat[[0, 4, 8, 5, 2, 1]]


def energy_stress_consistency(calc: Calculator, settings: ConservationSettings) -> list[StressConsistency]:
    """The model's stress against :func:`numerical_stress_voigt` on every :func:`stress_cells` cell."""
    out = []
    for name, atoms in stress_cells(settings).items():
        a = atoms.copy()
        a.calc = calc
        model = np.asarray(a.get_stress(voigt=True), dtype=float) / units.GPa
        numeric = numerical_stress_voigt(atoms, calc, settings.stress_strain) / units.GPa
        out.append(StressConsistency(name, len(atoms), model.tolist(), numeric.tolist(),
                                     float(np.max(np.abs(model - numeric))), settings.stress_strain))
    return out


# --------------------------------------------------------------------------------------------
# a smooth energy surface


@dataclass(frozen=True)
class Step:
    """A jump of the energy between two neighbouring scan points, beyond the smooth trend.

    ``size_meV_per_fu``: the jump minus the smooth trend over the last bisected sub-interval
    [``x_from``, ``x_to``]; ``grid_residual_meV_per_fu``: the same on the scan's grid interval;
    ``crossings``: pair distances crossing one of the model's cutoffs between the two points
    (text, e.g. ``"Pb-O 5.997 -> 6.004 A crosses the 6.0 A cutoff (atom_graph_cutoff), 4 pairs"``).
    """

    scan: str
    coordinate: str
    x_from: float
    x_to: float
    size_meV_per_fu: float
    crossings: list[str]
    grid_residual_meV_per_fu: float = math.nan

    def describe(self) -> str:
        where = f"{self.scan} at {self.coordinate} {self.x_from:.4f} -> {self.x_to:.4f}"
        why = ("; " + "; ".join(self.crossings) if self.crossings
               else "; no pair distance crosses a known cutoff there")
        return f"step of {self.size_meV_per_fu:+.2f} meV/f.u. along {where}{why}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EnergyScan:
    """E per formula unit along one coordinate; ``residual_meV_per_fu``: each interval's energy
    difference minus the smooth prediction from its neighbours (:func:`step_residuals`);
    ``noise_meV_per_fu``: the robust scale of those residuals (1.4826 x median |residual|)."""

    scan: str
    coordinate: str
    x: list[float]
    energy_per_fu_eV: list[float]
    residual_meV_per_fu: list[float]
    noise_meV_per_fu: float
    steps: list[Step] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scan_builders(settings: ConservationSettings) -> dict[str, tuple[str, np.ndarray, Callable[[float], Atoms]]]:
    """The three scans: name -> (coordinate label, grid values, cell at any value of the coordinate)."""
    n = settings.scan_points
    tet = structures.tetragonal()
    a0 = tet.cell[0, 0]
    cub_a = structures.cubic().cell[0, 0]
    centro = structures.cubic().get_scaled_positions()
    polar = tet.get_scaled_positions() - centro
    polar -= np.rint(polar)  # the displacement from the nearest centrosymmetric site

    def c_cell(x: float) -> Atoms:
        return structures.tetragonal(a=a0, c=x * a0)

    def v_cell(x: float) -> Atoms:
        return structures.cubic(cub_a * (1 + x) ** (1 / 3))

    def p_cell(x: float) -> Atoms:
        a = tet.copy()
        a.set_scaled_positions(centro + x * polar)
        return a

    return {"c (fixed a, fractional coordinates)": ("c/a", np.linspace(*settings.scan_c_over_a, n), c_cell),
            "volume (cubic)": ("V/V0 - 1", np.linspace(*settings.scan_volume, n), v_cell),
            "polar mode (PBEsol tetragonal cell)": ("amplitude (1 = PBEsol P4mm)", np.linspace(*settings.scan_polar, n),
                                                    p_cell)}


def scan_cells(settings: ConservationSettings) -> dict[str, tuple[str, np.ndarray, list[Atoms]]]:
    """The three scans: name -> (coordinate label, values, cells)."""
    return {k: (coord, x, [build(float(v)) for v in x]) for k, (coord, x, build) in scan_builders(settings).items()}


def step_residuals(energy: Sequence[float]) -> np.ndarray:
    """For each interval k, D_k = E_k+1 - E_k minus a quadratic (least squares, in k) through the
    differences of the two intervals on each side (or the four nearest at the ends): a smooth E
    leaves O(h^4), a step of size J in interval k leaves J there."""
    e = np.asarray(energy, dtype=float)
    d = np.diff(e)
    m = len(d)
    out = np.zeros(m)
    if m < 5:
        return out
    for k in range(m):
        others = sorted((j for j in range(m) if j != k), key=lambda j: (abs(j - k), j))[:4]
        coef = np.polyfit(np.array(others, dtype=float) - k, d[others], 2)
        out[k] = d[k] - np.polyval(coef, 0.0)
    return out


def find_steps(energy_per_fu_eV: Sequence[float], min_step_meV: float) -> tuple[list[int], np.ndarray, float]:
    """Intervals whose residual (:func:`step_residuals`, meV/f.u.) exceeds ``min_step_meV`` and is the
    largest within one interval on each side (a step also disturbs its neighbours' predictions, by
    2/3 of its size next to it).  Returns (interval indices, residuals, noise), the noise being the
    robust scale 1.4826 x median |residual| (reported; a smooth float32 surface gives ~1e-4 meV/f.u.)."""
    res = step_residuals(energy_per_fu_eV) * 1000.0
    noise = 1.4826 * float(np.median(np.abs(res))) if len(res) else 0.0
    steps = [k for k in range(len(res)) if abs(res[k]) > min_step_meV
             and all(abs(res[k]) >= abs(res[j]) for j in (k - 1, k + 1) if 0 <= j < len(res))]
    return steps, res, noise


def model_cutoffs(calc: Calculator) -> dict[str, float]:
    """The radial cutoffs (A) a calculator exposes, by name: CHGNet's atom and bond graph cutoffs,
    SevenNet's and M3GNet's ``cutoff`` (and three-body cutoff), MACE's ``r_max``, GPTFF's bond and
    angle cutoffs (``graph.r_cut``, ``graph.a_cut``), or a
    ``pto_cutoffs_A`` dict on any calculator.  Empty when none is found."""
    found: dict[str, float] = {}
    own = getattr(calc, "pto_cutoffs_A", None)
    if isinstance(own, dict):
        return {str(k): float(v) for k, v in own.items()}
    model = getattr(calc, "model", None)
    conv = getattr(model, "graph_converter", None)
    for name in ("atom_graph_cutoff", "bond_graph_cutoff"):
        if conv is not None and isinstance(getattr(conv, name, None), (int, float)):
            found[name] = float(getattr(conv, name))
    holders = (calc, getattr(calc, "potential", None), getattr(getattr(calc, "potential", None), "model", None),
               getattr(calc, "graph", None))
    for holder in holders:
        for name in ("cutoff", "threebody_cutoff", "r_max", "r_cut", "a_cut"):
            v = getattr(holder, name, None) if holder is not None else None
            if isinstance(v, (int, float)) or (hasattr(v, "item") and getattr(v, "numel", lambda: 0)() == 1):
                found.setdefault(name, float(v))
    for m in getattr(calc, "models", None) or []:
        v = getattr(m, "r_max", None)
        if v is not None:
            found.setdefault("r_max", float(v))
    return found


def cutoff_crossings(a: Atoms, b: Atoms, cutoffs: dict[str, float]) -> list[str]:
    """Pair distances that cross a cutoff between cells ``a`` and ``b`` (same atoms; a continuous
    deformation): one line per (element pair, cutoff) with the distances and the pair count."""
    from ase.neighborlist import neighbor_list

    if not cutoffs:
        return []
    rmax = max(cutoffs.values()) + 0.5
    sym = a.get_chemical_symbols()
    out = []
    i, j, S = neighbor_list("ijS", a, rmax)
    frac_b = b.get_scaled_positions(wrap=False)
    frac_a = a.get_scaled_positions(wrap=False)
    da = np.linalg.norm((frac_a[j] - frac_a[i] + S) @ a.cell.array, axis=1)
    db = np.linalg.norm((frac_b[j] - frac_b[i] + S) @ b.cell.array, axis=1)
    for name, rc in sorted(cutoffs.items(), key=lambda kv: kv[1]):
        # each unordered pair once: neighbor_list gives (i, j, S) and (j, i, -S)
        first = (i < j) | ((i == j) & (np.sign(S[:, 0] * 9 + S[:, 1] * 3 + S[:, 2]) > 0))
        cross = ((da - rc) * (db - rc) <= 0) & first
        groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for k in np.flatnonzero(cross):
            pair = tuple(sorted((sym[i[k]], sym[j[k]])))
            groups.setdefault(pair, []).append((float(da[k]), float(db[k])))
        for pair, dd in sorted(groups.items()):
            d0, d1 = dd[0]
            out.append(f"{pair[0]}-{pair[1]} {d0:.4f} -> {d1:.4f} A crosses the {rc:g} A cutoff ({name}), "
                       f"{len(dd)} pair(s) in the {len(a)}-atom cell")
    return out


def _energy_per_fu(atoms: Atoms, calc: Calculator) -> float:
    w = atoms.copy()
    w.calc = calc
    return float(w.get_potential_energy()) / (len(w) / 5)


def refine_interval(build: Callable[[float], Atoms], calc: Calculator, x_lo: float, x_hi: float, e_lo: float,
                    e_hi: float, slope: float, levels: int) -> list[list[float]]:
    """Bisect a candidate interval ``levels`` times, each time into the half whose energy change departs
    most from ``slope`` (the local trend, eV/f.u. per unit of the coordinate).  Returns one row
    [x_lo, x_hi, E_lo, E_hi, residual (meV/f.u.)] per level: level 0 the interval itself (residual
    against ``slope``), then each chosen half with the difference between its energy change and its
    sibling's.  A step keeps its full size at every level; a smooth but sharply curved stretch (which
    the grid's neighbours fit badly) leaves E'' w^2, vanishing with the width w."""
    rows = [[x_lo, x_hi, e_lo, e_hi, 1000.0 * ((e_hi - e_lo) - slope * (x_hi - x_lo))]]
    for _ in range(levels):
        mid = 0.5 * (x_lo + x_hi)
        e_mid = _energy_per_fu(build(mid), calc)
        left, right = e_mid - e_lo, e_hi - e_mid
        w = mid - x_lo
        if abs(left - slope * w) >= abs(right - slope * w):
            x_hi, e_hi, r = mid, e_mid, left - right
        else:
            x_lo, e_lo, r = mid, e_mid, right - left
        rows.append([x_lo, x_hi, e_lo, e_hi, 1000.0 * r])
    return rows


def scan_energies(calc: Calculator, settings: ConservationSettings) -> dict[str, dict[str, Any]]:
    """E per formula unit (eV) at every point of every scan, and the bisection
    (:func:`refine_interval`) of each interval whose residual exceeds ``refine_above_meV_per_fu``
    (what is cached): scan -> {"energies": [...], "refined": {interval: rows}}."""
    out: dict[str, dict[str, Any]] = {}
    for scan, (_, x, build) in scan_builders(settings).items():
        e = [_energy_per_fu(build(float(v)), calc) for v in x]
        idx, res, _ = find_steps(e, settings.refine_above_meV_per_fu)
        refined = {}
        d = np.diff(e)
        for k in idx:
            h = float(x[k + 1] - x[k])
            near = [d[j] for j in (k - 2, k - 1, k + 1, k + 2) if 0 <= j < len(d)]
            slope = float(np.median(near)) / h  # robust to a step in one neighbour
            refined[str(k)] = refine_interval(build, calc, float(x[k]), float(x[k + 1]), e[k], e[k + 1], slope,
                                              settings.refine_levels)
        out[scan] = {"energies": e, "refined": refined}
    return out


def analyse_scans(scans: dict[str, dict[str, Any]], settings: ConservationSettings, cutoffs: dict[str, float],
                  min_step_meV: float) -> list[EnergyScan]:
    """Steps of each scan: a grid interval whose residual (:func:`find_steps`) exceeds ``min_step_meV``
    and still does after bisection (the last level of :func:`refine_interval`), located at the last
    level's sub-interval and named by the pair distances crossing one of ``cutoffs`` there
    (:func:`cutoff_crossings`)."""
    if min_step_meV < settings.refine_above_meV_per_fu:
        raise ValueError(f"the step limit {min_step_meV} meV/f.u. is below the bisection threshold "
                         f"{settings.refine_above_meV_per_fu}: lower ConservationSettings.refine_above_meV_per_fu")
    out = []
    for scan, (coord, x, build) in scan_builders(settings).items():
        e = scans[scan]["energies"]
        idx, res, noise = find_steps(e, min_step_meV)
        steps = []
        for k in idx:
            rows = scans[scan]["refined"].get(str(k))
            lo, hi, _, _, r = rows[-1] if rows else (float(x[k]), float(x[k + 1]), 0.0, 0.0, float(res[k]))
            if abs(r) > min_step_meV:
                steps.append(Step(scan, coord, lo, hi, r, cutoff_crossings(build(lo), build(hi), cutoffs),
                                  float(res[k])))
        out.append(EnergyScan(scan, coord, [float(v) for v in x], list(e), res.tolist(), noise, steps))
    return out


# --------------------------------------------------------------------------------------------
# NVE


@dataclass(frozen=True)
class NVERun:
    """One velocity-Verlet run; energies per atom.

    ``target_K``: the temperature the run is meant to sample (velocities drawn at 2 x target from
    the undisplaced cell, so that equipartition brings the kinetic temperature near it, above it
    where the cell is not the model's minimum);
    ``mean_kinetic_K``: the run's mean kinetic temperature (3N - 3 degrees of freedom);
    ``drift_meV_per_atom_per_ps``: slope of a straight-line fit of the total energy, with
    ``drift_se_meV_per_atom_per_ps`` (residuals' statistical inefficiency ``g``);
    ``fluctuation_meV_per_atom``: rms of the total energy about that line; ``bound_meV_per_atom``:
    :func:`verlet_fluctuation_bound` at the run's kinetic temperature;
    ``total_energy_meV_per_atom``: the series (relative to its first value), one per step.
    """

    target_K: float
    timestep_fs: float
    steps: int
    n_atoms: int
    mean_kinetic_K: float
    drift_meV_per_atom_per_ps: float
    drift_se_meV_per_atom_per_ps: float
    inefficiency: float
    fluctuation_meV_per_atom: float
    bound_meV_per_atom: float
    max_frequency_THz: float
    finite: bool
    total_energy_meV_per_atom: list[float]

    @property
    def duration_ps(self) -> float:
        return self.steps * self.timestep_fs / 1000.0

    def to_dict(self, series: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if not series:
            d.pop("total_energy_meV_per_atom")
        d["duration_ps"] = self.duration_ps
        return d


def verlet_fluctuation_bound(temperature_K: float, timestep_fs: float, n_atoms: int,
                             max_frequency_THz: float, margin: float) -> float:
    """Upper bound (meV/atom) on the rms fluctuation of velocity Verlet's total energy for a
    harmonic crystal of ``n_atoms`` whose frequencies are all below ``max_frequency_THz``.

    Velocity Verlet conserves a shadow energy exactly for a harmonic mode of angular frequency w;
    the true energy E = shadow + V(q) (w dt)^2 / 4 oscillates with it.  Each mode's energy is
    exponentially distributed with mean k_B T (canonical) and V(q) swings between 0 and it, so the
    rms of E per mode is k_B T (w dt)^2 / 8, and for 3N independent modes
    sqrt(3N) k_B T (w_max dt)^2 / 8 at most: per atom sqrt(3 / N) k_B T (w_max dt)^2 / 8, times
    ``margin`` for anharmonicity.  It scales as dt^2.
    """
    w_dt = 2 * math.pi * max_frequency_THz * 1e12 * timestep_fs * 1e-15
    return margin * math.sqrt(3.0 / n_atoms) * KB_MEV_PER_K * temperature_K * w_dt**2 / 8.0


def nve_cell(settings: ConservationSettings, a: float = 3.90, c: float = 4.15) -> Atoms:
    """The MD start cell (experimental lattice, PBEsol fractional coordinates), repeated ``nve_repeat``."""
    return structures.supercell(structures.tetragonal(a=a, c=c), *settings.nve_repeat)


@dataclass(frozen=True)
class NVETrajectory:
    """The raw series of one velocity-Verlet run (what is cached): total energy (eV) and kinetic
    temperature (K, 3N - 3 degrees of freedom) at every step, step 0 included."""

    target_K: float
    timestep_fs: float
    steps: int
    n_atoms: int
    total_energy_eV: list[float]
    kinetic_K: list[float]
    finite: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def nve_simulate(calc: Calculator, atoms: Atoms, target_K: float, timestep_fs: float, steps: int, seed: int,
                 progress: Callable[[int, int], None] | None = None) -> NVETrajectory:
    """Velocity Verlet (ASE) for ``steps`` steps from Maxwell-Boltzmann velocities at 2 x ``target_K``
    (seeded, centre of mass at rest), total energy recorded every step; stops at the first
    non-finite energy."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet

    work = atoms.copy()
    work.calc = calc
    MaxwellBoltzmannDistribution(work, temperature_K=2 * target_K, rng=np.random.default_rng(seed))
    Stationary(work)
    dof = 3 * len(work) - 3
    etot: list[float] = []
    tkin: list[float] = []

    class Stop(Exception):
        pass

    def record() -> None:
        ek = float(work.get_kinetic_energy())
        e = float(work.get_potential_energy()) + ek
        etot.append(e)
        tkin.append(2 * ek / (dof * units.kB))
        if not math.isfinite(e):
            raise Stop
        if progress is not None:
            progress(len(etot) - 1, steps)

    dyn = VelocityVerlet(work, timestep=timestep_fs * units.fs)
    dyn.attach(record, interval=1)
    with contextlib.suppress(Stop):  # a non-finite energy ends the run; finite=False below
        dyn.run(steps)
    finite = len(etot) == steps + 1 and bool(np.all(np.isfinite(etot)))
    return NVETrajectory(float(target_K), float(timestep_fs), int(steps), len(work), etot, tkin, finite)


def analyse_nve(traj: NVETrajectory, max_frequency_THz: float, margin: float) -> NVERun:
    """Drift (straight-line fit, standard error from the residuals' statistical inefficiency) and
    fluctuation of a run, and its :func:`verlet_fluctuation_bound`."""
    from pto_checks.statistics import inefficiency

    n = traj.n_atoms
    e = np.array(traj.total_energy_eV, dtype=float) / n * 1000.0  # meV/atom
    t_ps = np.arange(len(e)) * traj.timestep_fs / 1000.0
    mean_t = float(np.mean(traj.kinetic_K)) if traj.kinetic_K else math.nan
    if traj.finite and len(e) > 3:
        slope, icept = np.polyfit(t_ps, e, 1)
        resid = e - (slope * t_ps + icept)
        g = inefficiency(resid)
        fluct = float(np.sqrt(np.mean(resid**2)))
        se = float(fluct * math.sqrt(g / np.sum((t_ps - t_ps.mean()) ** 2)))
        bound = verlet_fluctuation_bound(mean_t, traj.timestep_fs, n, max_frequency_THz, margin)
    else:
        slope, g, fluct, se, bound = (math.nan,) * 5
    return NVERun(traj.target_K, traj.timestep_fs, traj.steps, n, mean_t, float(slope), se, float(g), fluct,
                  bound, float(max_frequency_THz), traj.finite, (e - e[0]).tolist() if len(e) else [])


# --------------------------------------------------------------------------------------------
# verdicts (limits: reference_data/pto.toml [tolerances.conservation_*])


def _trained_on(functional: str) -> str:
    return f"model trained on {functional} data"


def force_verdict(paths: Sequence[PathConsistency], functional: str):
    """Every path's relative error at most ``max_relative_error``."""
    from pto_checks.reference import tolerance
    from pto_checks.verdicts import Verdict

    tol = tolerance("conservation_forces")
    lim = float(tol["max_relative_error"])
    bad = [p for p in paths if not p.relative_error <= lim]
    worst = max(paths, key=lambda p: p.relative_error if math.isfinite(p.relative_error) else math.inf)
    rows = "; ".join(f"{p.cell} ({p.n_atoms} atoms): max |dE + work| {1000 * p.max_mismatch_eV:.3f} meV of a "
                     f"{1000 * p.total_variation_eV:.1f} meV variation = {p.relative_error:.2e}" for p in paths)
    head = ("the forces are the gradient of the energy" if not bad else
            "FORCES ARE NOT THE GRADIENT OF THE ENERGY on " + ", ".join(p.cell for p in bad)
            + " (forces predicted directly, or an energy with steps): MD with them does not conserve energy")
    msg = (f"{head}: worst relative error {worst.relative_error:.2e} ({worst.cell}), limit {lim} "
           f"(energy change vs minus the work of the forces along a random smooth path, Simpson's rule); "
           f"{rows}; {_trained_on(functional)}")
    return Verdict("energy_force_consistency", not bad, msg, {p.cell: p.relative_error for p in paths}, 0.0, lim,
                   "relative", "")


def stress_verdict(cells: Sequence[StressConsistency], functional: str):
    """Every Voigt component within ``max_error_GPa`` + ``relative`` x |finite difference|."""
    from pto_checks.reference import tolerance
    from pto_checks.verdicts import Verdict

    tol = tolerance("conservation_stress")
    abs_lim, rel = float(tol["max_error_GPa"]), float(tol["relative"])
    bad, rows, ratios = [], [], []
    for c in cells:
        m, n = np.array(c.model_GPa), np.array(c.numeric_GPa)
        ok = bool(np.all(np.abs(m - n) <= abs_lim + rel * np.abs(n)))
        if not ok:
            bad.append(c.cell)
        big = np.abs(n) > 1.0
        ratios.extend((m[big] / n[big]).tolist())
        rows.append(f"{c.cell}: max |error| {c.max_abs_error_GPa:.3f} GPa (largest |stress| "
                    f"{np.max(np.abs(n)):.2f} GPa)" + ("" if ok else " TOO LARGE"))
    ratio = float(np.median(ratios)) if ratios else math.nan
    hint = ""
    if bad and math.isfinite(ratio):
        hint = (f"; median model/finite-difference ratio {ratio:.3g}"
                + (" (a factor 1/160.2 or 160.2: the stress is in GPa, not eV/A^3)"
                   if abs(abs(ratio) * units.GPa - 1) < 0.05 or abs(abs(ratio) / units.GPa - 1) < 0.05 else "")
                + (" (the sign is flipped)" if ratio < 0 else ""))
    head = ("the stress is the strain derivative of the energy" if not bad else
            "STRESS IS NOT THE STRAIN DERIVATIVE OF THE ENERGY on " + ", ".join(bad)
            + ": a barostat would drive the cell with a stress the sampled energy does not have")
    worst = max(c.max_abs_error_GPa for c in cells)
    msg = (f"{head}: worst |model - (1/V) dE/d(strain)| {worst:.3f} GPa, limit {abs_lim} GPa + {rel:.0%} of "
           f"|stress|{hint}; {'; '.join(rows)}; central differences at strain +-{cells[0].strain}; "
           f"{_trained_on(functional)}")
    return Verdict("energy_stress_consistency", not bad, msg, {c.cell: c.max_abs_error_GPa for c in cells}, 0.0,
                   {"max_error_GPa": abs_lim, "relative": rel}, "GPa", "")


def smoothness_verdict(scans: Sequence[EnergyScan], functional: str, cutoffs: dict[str, float]):
    """No step above ``min_step_meV_per_fu`` in any scan."""
    from pto_checks.reference import tolerance
    from pto_checks.verdicts import Verdict

    tol = tolerance("conservation_smoothness")
    lim = float(tol["min_step_meV_per_fu"])
    steps = [s for sc in scans for s in sc.steps]
    rows = "; ".join(f"{sc.scan}: {len(sc.x)} points, largest residual "
                     f"{max(map(abs, sc.residual_meV_per_fu)):.4f} meV/f.u. (noise {sc.noise_meV_per_fu:.1e})"
                     for sc in scans)
    known = (", ".join(f"{k} {v:g} A" for k, v in cutoffs.items()) if cutoffs
             else "none exposed by the calculator")
    head = ("the energy surface is smooth (no step)" if not steps else
            f"ENERGY STEP(S): {len(steps)} found: " + "; ".join(s.describe() for s in steps)
            + ". The forces do not see a step: MD crossing it gains or loses that energy each time")
    msg = f"{head}; limit {lim} meV/f.u.; {rows}; model cutoffs: {known}; {_trained_on(functional)}"
    measured = {sc.scan: max(map(abs, sc.residual_meV_per_fu)) for sc in scans}
    v = Verdict("smooth_energy_surface", not steps, msg, measured, 0.0, lim, "meV/f.u.", "")
    v.details = {"steps": [s.to_dict() for s in steps], "cutoffs_A": cutoffs}
    return v


def nve_verdict(runs: Sequence[NVERun], functional: str):
    """Each run finite, its fluctuation within its bound, and its drift below the limit at the
    [statistics] confidence level (an interval containing the limit: inconclusive)."""
    from pto_checks.decisions import Outcome, Side, decide_threshold
    from pto_checks.reference import tolerance
    from pto_checks.verdicts import Verdict

    tol = tolerance("conservation_nve")
    lim = float(tol["max_drift_meV_per_atom_per_ps"])
    outcomes, rows, decisions = [], [], []
    for r in runs:
        if not r.finite:
            outcomes.append(Outcome.FAIL)
            rows.append(f"{r.target_K:.0f} K: NON-FINITE energy")
            continue
        n_eff = (r.steps + 1) / r.inefficiency if r.inefficiency > 0 else math.nan
        d = decide_threshold(abs(r.drift_meV_per_atom_per_ps), r.drift_se_meV_per_atom_per_ps, lim, n_eff=n_eff,
                             temperature_K=r.target_K, unit="meV/atom/ps")
        decisions.append(d.to_dict())
        drift = d.outcome(Side.BELOW)
        fluct_ok = r.fluctuation_meV_per_atom <= r.bound_meV_per_atom
        out = Outcome.FAIL if (drift is Outcome.FAIL or not fluct_ok) else drift
        outcomes.append(out)
        rows.append(f"{r.target_K:.0f} K (mean kinetic {r.mean_kinetic_K:.0f} K, {r.n_atoms} atoms, "
                    f"{r.duration_ps:g} ps at {r.timestep_fs:g} fs): "
                    + d.describe("|drift|", "meV/atom/ps", 3)
                    + f"; fluctuation {r.fluctuation_meV_per_atom:.4f} meV/atom vs bound {r.bound_meV_per_atom:.4f}"
                    + ("" if fluct_ok else " TOO LARGE"))
    outcome = (Outcome.FAIL if Outcome.FAIL in outcomes else
               Outcome.INCONCLUSIVE if Outcome.INCONCLUSIVE in outcomes else Outcome.PASS)
    head = {Outcome.PASS: "velocity Verlet conserves the model's energy",
            Outcome.FAIL: "ENERGY NOT CONSERVED in NVE (drift above the limit, fluctuation above the "
                          "velocity-Verlet bound, or a non-finite run)",
            Outcome.INCONCLUSIVE: "INCONCLUSIVE: the drift's interval contains the limit"}[outcome]
    msg = (f"{head}; drift limit {lim} meV/atom/ps; fluctuation bound {tol['fluctuation_margin']:g} x "
           f"sqrt(3/N) k_B T (2 pi {tol['max_frequency_THz']:g} THz dt)^2 / 8 (scales as dt^2); "
           + "; ".join(rows) + f"; {_trained_on(functional)}")
    measured = {f"{r.target_K:.0f}K": {"drift_meV_per_atom_per_ps": r.drift_meV_per_atom_per_ps,
                                       "fluctuation_meV_per_atom": r.fluctuation_meV_per_atom} for r in runs}
    v = Verdict("nve_energy_conservation", outcome is Outcome.PASS, msg, measured, 0.0,
                {"max_drift_meV_per_atom_per_ps": lim,
                 "fluctuation_bound_meV_per_atom": {f"{r.target_K:.0f}K": r.bound_meV_per_atom for r in runs}},
                "meV/atom/ps, meV/atom", tol["source"], outcome=outcome)
    v.details = {"drift_decisions": decisions}
    return v
