"""Harmonic phonons by phonopy finite displacements, on the band path of the study.

Frequencies in THz; imaginary modes are reported as negative frequencies (phonopy's convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from pto_checks.decisions import Outcome

#: High-symmetry points of the tetragonal cell (reduced coordinates) and the study's path.
POINTS = {
    "G": (0.0, 0.0, 0.0),
    "X": (0.0, 0.5, 0.0),
    "M": (0.5, 0.5, 0.0),
    "Z": (0.0, 0.0, 0.5),
    "R": (0.0, 0.5, 0.5),
    "A": (0.5, 0.5, 0.5),
}
PATH = ("G", "X", "M", "G", "Z", "R", "A", "Z")


@dataclass
class PhononResult:
    """Phonons of one supercell: band structure along :data:`PATH`, a Gamma-centred q-mesh and the
    q-points commensurate with the supercell (where the frequencies are exact, not interpolated).

    ``band_q``: (n, 3) reduced q-points; ``band_freq``: (n, branches) THz; ``band_distance``:
    (n,) path coordinate; ``mesh_q``, ``mesh_freq`` and ``grid_q``, ``grid_freq`` likewise.
    """

    band_q: np.ndarray
    band_freq: np.ndarray
    band_distance: np.ndarray
    label_positions: list[float]
    labels: list[str]
    mesh_q: np.ndarray
    mesh_freq: np.ndarray
    n_displacements: int
    supercell: tuple[int, int, int] = (2, 2, 2)
    grid_q: np.ndarray | None = None
    grid_freq: np.ndarray | None = None

    def all_q_and_freq(self) -> tuple[np.ndarray, np.ndarray]:
        """Every q judged (path, mesh, commensurate grid) and its frequencies (THz)."""
        qs, fs = [self.band_q, self.mesh_q], [self.band_freq, self.mesh_freq]
        if self.grid_q is not None and len(self.grid_q):
            qs.append(self.grid_q)
            fs.append(self.grid_freq)
        return np.vstack(qs), np.vstack(fs)

    def save(self, path: str | Path) -> None:
        """Write the arrays to an ``.npz`` file (read back with :meth:`load`)."""
        np.savez(path, band_q=self.band_q, band_freq=self.band_freq, band_distance=self.band_distance,
                 label_positions=self.label_positions, labels=self.labels, mesh_q=self.mesh_q,
                 mesh_freq=self.mesh_freq, n_displacements=self.n_displacements,
                 supercell=self.supercell, grid_q=self.grid_q, grid_freq=self.grid_freq)

    @classmethod
    def load(cls, path: str | Path) -> PhononResult:
        z = np.load(path, allow_pickle=False)  # never unpickle what the cache holds
        return cls(z["band_q"], z["band_freq"], z["band_distance"], [float(x) for x in z["label_positions"]],
                   [str(x) for x in z["labels"]], z["mesh_q"], z["mesh_freq"], int(z["n_displacements"]),
                   tuple(int(x) for x in z["supercell"]), z["grid_q"], z["grid_freq"])


def _to_phonopy(atoms: Atoms):
    from phonopy.structure.atoms import PhonopyAtoms

    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                        scaled_positions=atoms.get_scaled_positions())


def commensurate_grid(supercell: tuple[int, int, int]) -> np.ndarray:
    """The q-points (reduced, in [0, 1)) commensurate with a diagonal supercell."""
    axes = [np.arange(n) / n for n in supercell]
    return np.array([(x, y, z) for x in axes[0] for y in axes[1] for z in axes[2]], dtype=float)


def compute_phonons(
    atoms: Atoms,
    calc: Calculator,
    supercell: tuple[int, int, int] = (2, 2, 2),
    displacement: float = 0.01,
    band_points: int = 51,
    mesh: tuple[int, int, int] = (8, 8, 8),
    band_yaml: str | Path | None = None,
    symprec: float = 1e-3,
    params_yaml: str | Path | None = None,
    progress=None,
) -> PhononResult:
    """Finite-displacement phonons of ``atoms`` (a relaxed unit cell) with ``calc``.

    ``displacement`` in Angstrom; ``symprec`` (Angstrom) is phonopy's symmetry tolerance (the
    harness's one tolerance, :class:`pto_checks.protocols.StaticProtocol`).  Force constants are
    symmetrized (translational sum rule).  Writes phonopy's ``band.yaml`` and
    ``phonopy_params.yaml`` (structure, supercell, force constants: ``phonopy.load`` reads it)
    if asked.  ``progress(i, n)`` is called after each displaced supercell.
    """
    from phonopy import Phonopy

    ph = Phonopy(_to_phonopy(atoms), supercell_matrix=np.diag(supercell), primitive_matrix=np.eye(3),
                 symprec=symprec)  # q in the basis of this cell (phonopy 4 would otherwise pick its own)
    ph.generate_displacements(distance=displacement)
    forces = []
    cells = ph.supercells_with_displacements
    for k, sc in enumerate(cells):
        work = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        work.calc = calc
        f = np.array(work.get_forces())
        forces.append(f - f.mean(axis=0))  # remove drift (sum rule)
        if progress is not None:
            progress(k + 1, len(cells))
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    ph.symmetrize_force_constants()
    if params_yaml is not None:
        ph.save(filename=str(params_yaml), settings={"force_constants": True})

    qpoints = [np.linspace(POINTS[a], POINTS[b], band_points) for a, b in zip(PATH[:-1], PATH[1:], strict=True)]
    ph.run_band_structure(qpoints, labels=list(PATH), path_connections=[True] * (len(PATH) - 2) + [False])
    bs = ph.band_structure
    band_q = np.vstack(bs.qpoints)
    band_freq = np.vstack(bs.frequencies)
    dist = np.concatenate(bs.distances)
    label_pos = [float(d[0]) for d in bs.distances] + [float(bs.distances[-1][-1])]
    if band_yaml is not None:
        ph.write_yaml_band_structure(filename=str(band_yaml))
    ph.run_mesh(list(mesh), with_eigenvectors=False, is_gamma_center=True)
    mesh_q, mesh_f = np.asarray(ph.mesh.qpoints), np.asarray(ph.mesh.frequencies)
    grid = commensurate_grid(supercell)
    ph.run_qpoints(grid)
    grid_f = np.asarray(ph.qpoints.frequencies)
    return PhononResult(band_q, band_freq, dist, label_pos, list(PATH), mesh_q, mesh_f, len(cells),
                        tuple(int(n) for n in supercell), grid, grid_f)


def is_commensurate(q: np.ndarray, supercell: tuple[int, int, int], tol: float = 1e-6) -> np.ndarray:
    """True for reduced q-points commensurate with the supercell (exact, not interpolated)."""
    qs = np.atleast_2d(np.asarray(q, dtype=float)) * np.asarray(supercell, dtype=float)
    return np.all(np.abs(qs - np.rint(qs)) < tol, axis=1)


@dataclass
class Mode:
    """One phonon frequency: ``f_thz`` (negative = imaginary) at reduced ``q``, ``branch`` index
    (sorted ascending at that q), ``exact`` when q is commensurate with the ``supercell``."""

    f_thz: float
    q: tuple[float, float, float]
    branch: int
    exact: bool
    supercell: tuple[int, int, int]

    def describe(self) -> str:
        n = "x".join(str(x) for x in self.supercell)
        how = "exact (q commensurate with" if self.exact else "interpolated (q not commensurate with"
        return f"{self.f_thz:.3f} THz at q = ({', '.join(f'{x:.3f}' for x in self.q)}) branch {self.branch}, {how} {n})"

    def to_dict(self) -> dict:
        return {"f_thz": self.f_thz, "q": list(self.q), "branch": self.branch, "exact": self.exact,
                "supercell": list(self.supercell)}


def below_threshold(result: PhononResult, acoustic_gamma_thz: float = -0.01, elsewhere_thz: float = 0.0
                    ) -> tuple[list[Mode], Mode, Mode]:
    """Every branch at every q (path, mesh, commensurate grid) against the rule: at Gamma the three
    lowest (acoustic) modes >= ``acoustic_gamma_thz``, the optic ones >= ``elsewhere_thz``;
    elsewhere every branch >= ``elsewhere_thz``.  Nothing is excluded.

    Returns the modes below the threshold (lowest first), the lowest mode of all and the lowest
    mode away from Gamma.
    """
    q, f = result.all_q_and_freq()
    f = np.sort(np.asarray(f, dtype=float), axis=1)
    gamma = np.all(np.abs(q - np.rint(q)) < 1e-9, axis=1)
    limit = np.full(f.shape, elsewhere_thz)
    limit[gamma, :3] = acoustic_gamma_thz
    exact = is_commensurate(q, result.supercell)

    def mode(i: int, j: int) -> Mode:
        return Mode(float(f[i, j]), tuple(float(x) for x in q[i]), int(j), bool(exact[i]), result.supercell)

    rows, cols = np.nonzero(f < limit)
    order = np.argsort(f[rows, cols])
    bad = [mode(int(rows[k]), int(cols[k])) for k in order]
    i, j = np.unravel_index(np.argmin(f), f.shape)
    off = np.where(gamma[:, None], np.inf, f)
    k, m = np.unravel_index(np.argmin(off), off.shape)
    return bad, mode(int(i), int(j)), mode(int(k), int(m))


@dataclass
class StabilityStep:
    """The judgement of one supercell's spectrum."""

    supercell: tuple[int, int, int]
    lowest: Mode
    n_below: int
    worst: Mode | None
    worst_exact: Mode | None
    lowest_off_gamma: Mode | None = None
    below: list[Mode] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return {"supercell": list(self.supercell), "lowest": self.lowest.to_dict(), "n_below": self.n_below,
                "lowest_off_gamma": None if self.lowest_off_gamma is None else self.lowest_off_gamma.to_dict(),
                "worst": None if self.worst is None else self.worst.to_dict(),
                "worst_exact": None if self.worst_exact is None else self.worst_exact.to_dict()}


@dataclass
class StabilityDecision:
    """Outcome of :func:`decide_stability`: ``stable``; ``decided_by`` the supercell whose
    spectrum decided; ``mode`` the deciding frequency (the worst one below the threshold when
    unstable, else the lowest of all); ``steps`` every supercell computed, in order; ``reason``."""

    stable: bool
    decided_by: tuple[int, int, int]
    mode: Mode
    steps: list[StabilityStep]
    reason: str
    outcome: Outcome | None = None
    long_wavelength: dict | None = None
    exact_probes: list = field(default_factory=list)  #: :class:`ExactProbe` s, in the order made

    def __post_init__(self):
        if self.outcome is None:
            self.outcome = Outcome.PASS if self.stable else Outcome.FAIL
        self.outcome = Outcome(self.outcome)

    def to_dict(self) -> dict:
        return {"stable": self.stable, "outcome": self.outcome.value, "decided_by": list(self.decided_by),
                "mode": self.mode.to_dict(), "steps": [s.to_dict() for s in self.steps], "reason": self.reason,
                "long_wavelength": self.long_wavelength, "exact_probes": [p.to_dict() for p in self.exact_probes]}


def judge(result: PhononResult, acoustic_gamma_thz: float = -0.01, elsewhere_thz: float = 0.0) -> StabilityStep:
    """One supercell's spectrum against the rule of :func:`below_threshold`."""
    bad, lowest, off = below_threshold(result, acoustic_gamma_thz, elsewhere_thz)
    exact = [m for m in bad if m.exact]
    return StabilityStep(result.supercell, lowest, len(bad), bad[0] if bad else None, exact[0] if exact else None,
                         off, bad)


def canonical_q(q) -> np.ndarray:
    """Reduced q folded to its P4mm + time-reversal representative: q -> -q, x <-> y and the signs
    of q_x, q_y are symmetries of the tetragonal (4mm) spectrum, so (|q_x|, |q_y|) sorted and |q_z|,
    each wrapped into [0, 1/2]."""
    q = np.atleast_2d(np.asarray(q, dtype=float))
    w = np.abs(q - np.rint(q))
    xy = np.sort(w[:, :2], axis=1)
    return np.column_stack([xy, w[:, 2]])


def q_distance(q1, q2) -> np.ndarray:
    """Largest reduced-coordinate difference between the P4mm-equivalent representatives
    (:func:`canonical_q`) of ``q1`` (one point) and each of ``q2``."""
    return np.max(np.abs(canonical_q(q2) - canonical_q(q1)[0]), axis=1)


def nearest_exact(result: PhononResult, q, radius: float) -> list[Mode]:
    """The lowest mode at each q commensurate with ``result.supercell`` within ``radius``
    (:func:`q_distance`) of ``q``: the exact frequencies next to an interpolated one."""
    if result.grid_q is None or not len(result.grid_q):
        return []
    d = q_distance(q, result.grid_q)
    out = []
    for i in np.nonzero(d <= radius + 1e-9)[0]:
        j = int(np.argmin(result.grid_freq[i]))
        out.append(Mode(float(result.grid_freq[i, j]), tuple(float(x) for x in result.grid_q[i]), j, True,
                        result.supercell))
    return sorted(out, key=lambda m: m.f_thz)


def commensurate_supercell(q, max_atoms: int, atoms_per_cell: int = 5, max_n: int = 64
                           ) -> tuple[tuple[int, int, int], tuple[float, float, float]] | None:
    """The smallest diagonal supercell ``(n_x, n_y, n_z)`` whose exact q-grid holds a point next to
    the reduced ``q`` (its P4mm representative, :func:`canonical_q`), and that point; None when it
    would need more than ``max_atoms`` atoms.

    Per axis the smallest n with a multiple k/n within ``min(0.01, 0.15 |q_i|)`` of ``q_i`` (so a
    dip near Gamma is met within 15 % of its own |q|, where the acoustic frequency scales with q);
    a zero component needs n = 1.  At that point the supercell's frequencies are exact (a frozen
    phonon), whatever the range of the force constants.
    """
    qc = canonical_q(q)[0]
    ns, qs = [], []
    for x in qc:
        if x < 1e-9:
            ns.append(1)
            qs.append(0.0)
            continue
        tol = min(0.01, 0.15 * x)
        for n in range(1, max_n + 1):
            k = round(x * n)
            if k > 0 and abs(x - k / n) <= tol + 1e-12:
                ns.append(n)
                qs.append(k / n)
                break
        else:
            return None
    if atoms_per_cell * int(np.prod(ns)) > max_atoms:
        return None
    return (ns[0], ns[1], ns[2]), (qs[0], qs[1], qs[2])


@dataclass
class ExactProbe:
    """A dip seen only at an interpolated q, recomputed exactly: ``dip`` (the interpolated mode),
    ``supercell`` (diagonal, commensurate with ``q``), ``q`` (the exact point next to the dip) and
    ``mode`` (the lowest frequency there)."""

    dip: Mode
    supercell: tuple[int, int, int]
    q: tuple[float, float, float]
    mode: Mode

    def describe(self) -> str:
        n = "x".join(map(str, self.supercell))
        return (f"dip {self.dip.f_thz:.3f} THz at ({', '.join(f'{x:.3f}' for x in self.dip.q)}) in "
                f"{'x'.join(map(str, self.dip.supercell))} -> exact {self.mode.f_thz:.3f} THz at "
                f"({', '.join(f'{x:.3f}' for x in self.q)}) in {n}")

    def to_dict(self) -> dict:
        return {"dip": self.dip.to_dict(), "supercell": list(self.supercell), "q": list(self.q),
                "mode": self.mode.to_dict()}


def dip_targets(steps: list[StabilityStep], radius: float) -> list[Mode]:
    """The places to probe exactly: the worst dip of each cluster (modes within ``radius`` of each
    other, :func:`q_distance`) of the last supercell, then the worst dip of each earlier supercell
    that lies in none of them (every one: a dip left out could hide an instability)."""
    out: list[Mode] = []
    for m in list(steps[-1].below) + [s.worst for s in steps[:-1] if s.worst is not None]:
        if all(q_distance(t.q, [m.q])[0] > radius + 1e-9 for t in out):
            out.append(m)
    return out


def _exact_at(result: PhononResult, q) -> Mode:
    """The lowest frequency at the commensurate point ``q`` of ``result`` (its grid)."""
    i = int(np.argmin(q_distance(q, result.grid_q)))
    j = int(np.argmin(result.grid_freq[i]))
    return Mode(float(result.grid_freq[i, j]), tuple(float(x) for x in result.grid_q[i]), j, True, result.supercell)


def decide_stability(compute, supercells: list[tuple[int, int, int]], acoustic_gamma_thz: float = -0.01,
                     elsewhere_thz: float = 0.0, match_grid_spacings: float = 1.0, long_wavelength=None,
                     exact_probe_max_atoms: int = 0) -> tuple[StabilityDecision, PhononResult]:
    """Judge the spectrum of ``supercells[0]``; while every frequency below the threshold is an
    interpolation (q not commensurate with that supercell), recompute with the next, larger one
    and judge that instead.  ``compute(supercell) -> PhononResult``.

    * FAIL: a frequency below the threshold at a commensurate q (exact) of any supercell computed;
      or, at the largest supercell, an interpolated one that persists: every supercell computed
      has a frequency below the threshold within ``match_grid_spacings / n`` (n the largest
      supercell's repetition; distance :func:`q_distance`, P4mm-equivalent points identified) of
      the largest supercell's dip.
    * PASS: a supercell's spectrum has no frequency below the threshold.
    * FAIL: some supercell's dips lie near Gamma (within 1/n) and ``long_wavelength()`` (the exact
      q -> 0 probe, :func:`pto_checks.elastic.elastic_constants`; called only then) finds the
      cell mechanically unstable (Born criteria): the acoustic branches are imaginary as q -> 0.
    * With ``exact_probe_max_atoms`` > 0, first: each dip still interpolated in the largest
      supercell (and the worst of each earlier one; :func:`dip_targets`) is recomputed EXACTLY with
      a diagonal supercell commensurate with a q next to it (:func:`commensurate_supercell`, at
      most that many atoms; ``compute`` is called with it).  FAIL when an exact frequency there
      is below the threshold; PASS when every dip was probed, every probe is real and (dips near
      Gamma) the long-wavelength probe finds the cell stable: the dips were interpolation
      artefacts.  A dip that needs a larger supercell is left to the rules below.
    * INCONCLUSIVE: the largest supercell still has interpolated dips, but none is confirmed (each
      moved between supercells) and every exact q of every supercell is real; a larger supercell
      would decide.

    Returns the decision and the deciding spectrum.
    """
    steps: list[StabilityStep] = []
    spectra: list[PhononResult] = []
    for k, sc in enumerate(supercells):
        res = compute(sc)
        step = judge(res, acoustic_gamma_thz, elsewhere_thz)
        steps.append(step)
        spectra.append(res)
        name = "x".join(str(x) for x in sc)
        if step.worst is None:
            why = (f"no frequency below the threshold in the {name} spectrum"
                   + (f" (the {', '.join('x'.join(map(str, s.supercell)) for s in steps[:-1])} dips were "
                      "interpolation artefacts)" if k else ""))
            return StabilityDecision(True, sc, step.lowest, steps, why), res
        if step.worst_exact is not None:
            return StabilityDecision(False, sc, step.worst_exact, steps,
                                     f"{step.n_below} frequencies below the threshold in the {name} spectrum, "
                                     "at least one exact"), res
        if k < len(supercells) - 1:
            continue
        radius = match_grid_spacings / max(sc)
        lw = None
        near_gamma = [b for s in steps for b in s.below if q_distance((0, 0, 0), [b.q])[0] <= radius + 1e-9]
        probes: list[ExactProbe] = []
        unprobed: list[Mode] = []
        if exact_probe_max_atoms > 0:
            for m in dip_targets(steps, 0.5 / max(sc)):  # half the largest supercell's grid spacing
                found = commensurate_supercell(m.q, exact_probe_max_atoms)
                if found is None:
                    unprobed.append(m)
                    continue
                sc2, q2 = found
                r2 = compute(sc2)
                step2 = judge(r2, acoustic_gamma_thz, elsewhere_thz)
                probe = ExactProbe(m, sc2, q2, _exact_at(r2, q2))
                probes.append(probe)
                if step2.worst_exact is not None:
                    why = (f"the dip {m.describe()} recomputed exactly with a {'x'.join(map(str, sc2))} supercell "
                           f"(commensurate with q next to it): {step2.worst_exact.describe()}; "
                           + "; ".join(p.describe() for p in probes))
                    return StabilityDecision(False, sc2, step2.worst_exact, steps, why, Outcome.FAIL,
                                             None, probes), r2
        if near_gamma and long_wavelength is not None:
            el = long_wavelength()
            lw = el.to_dict()
            if not el.stable:
                m = min(near_gamma, key=lambda b: b.f_thz)
                why = (f"interpolated dips near Gamma (worst {m.describe()}) and the exact long-wavelength probe "
                       f"confirms them: the relaxed-ion elastic constants violate Born's criteria "
                       f"({'; '.join(el.violations)}), so the acoustic branches are imaginary as q -> 0")
                return StabilityDecision(False, sc, m, steps, why, Outcome.FAIL, lw, probes), res
        persisting = [m for m in step.below
                      if all(any(q_distance(m.q, [b.q])[0] <= radius + 1e-9 for b in s.below) for s in steps[:-1])]
        if persisting and probes and not unprobed:  # the interpolations agree, the exact probe next to them does not
            m = persisting[0]
            why = (f"CONFLICTING: the dip {m.describe()} persists at the same place in every supercell, but "
                   "recomputed exactly next to it it is real (" + "; ".join(p.describe() for p in probes) + "): "
                   "an instability narrower than the probe's distance from the dip, or an artefact; a probe "
                   "supercell commensurate with the dip's q itself (phonon.exact_probe_max_atoms) would decide")
            return StabilityDecision(False, sc, m, steps, why, Outcome.INCONCLUSIVE, lw, probes), res
        if probes and not unprobed:
            lowest = min((p.mode for p in probes), key=lambda x: x.f_thz)
            why = (f"every frequency below the threshold in the {name} spectrum is interpolated, and each dip "
                   "recomputed exactly at its own q is real, so the dips are interpolation artefacts ("
                   + "; ".join(p.describe() for p in probes) + ")"
                   + ("; the exact long-wavelength limit is stable (relaxed-ion Born criteria hold)" if lw else ""))
            return StabilityDecision(True, sc, lowest, steps, why, Outcome.PASS, lw, probes), res
        if persisting:
            m = persisting[0]

            def match(s: StabilityStep, m: Mode = m, radius: float = radius) -> str:
                near = [b for b in s.below if q_distance(m.q, [b.q])[0] <= radius + 1e-9]
                return f"{'x'.join(map(str, s.supercell))}: {min(near, key=lambda b: b.f_thz).describe()}"

            why = (f"below the threshold at interpolated q in every supercell up to the largest, {name}, at the same "
                   f"place (within {radius:.3f} in reduced q, P4mm-equivalent points identified): the instability "
                   f"persists ({step.n_below} frequencies below the threshold in {name}; "
                   + "; ".join(match(s) for s in steps[:-1]) + ")")
            return StabilityDecision(False, sc, m, steps, why, Outcome.FAIL, lw, probes), res
        seen = "; ".join(f"{'x'.join(map(str, s.supercell))}: worst {s.worst.describe()}" for s in steps)
        near = [nearest_exact(r, step.worst.q, 1.0 / max(r.supercell)) for r in spectra]
        exact_txt = "; ".join(f"{'x'.join(map(str, r.supercell))}: " + ", ".join(
            f"{e.f_thz:.2f} THz at ({', '.join(f'{x:.3f}' for x in e.q)})" for e in ne[:3])
            for r, ne in zip(spectra, near, strict=True) if ne)
        bigger = max(sc) + 1
        why = (f"UNCONFIRMED: interpolated frequencies below the threshold in every supercell, but they move "
               f"between supercells (none persists within {radius:.3f} in reduced q) and every exact q of every "
               f"supercell is real ({seen}; lowest exact modes next to the {name} dip: {exact_txt or 'none'}). "
               f"Undecided: a {bigger}x{bigger}x{bigger} supercell (phonon.escalation) would show whether the dip "
               "is an interpolation artefact or an instability between commensurate points"
               + (f"; the exact long-wavelength limit is stable (relaxed-ion Born criteria hold: C11 "
                  f"{lw['c_GPa'][0][0]:.0f}, C12 {lw['c_GPa'][0][1]:.0f}, C13 {lw['c_GPa'][0][2]:.0f}, C33 "
                  f"{lw['c_GPa'][2][2]:.0f}, C44 {lw['c_GPa'][3][3]:.0f}, C66 {lw['c_GPa'][5][5]:.0f} GPa), so "
                  "the dips near Gamma are no elastic instability" if lw else ""))
        if unprobed:
            why += (f"; {len(unprobed)} dip(s) not recomputed exactly: a supercell commensurate with them needs "
                    f"more than phonon.exact_probe_max_atoms = {exact_probe_max_atoms} atoms")
        return StabilityDecision(False, sc, step.worst, steps, why, Outcome.INCONCLUSIVE, lw, probes), res
    raise ValueError("no supercell given")



def plot_bands(result: PhononResult, path: str | Path, title: str = "", caption: str = "",
               first: PhononResult | None = None) -> None:
    """Save the band structure as a PNG (matplotlib, Agg): imaginary frequencies drawn negative,
    a zero line, the q-points of the path commensurate with the supercell (exact, not
    interpolated) marked on the zero line, and ``caption`` (the verdict) under the axes.
    ``first``: the spectrum of the first (smaller) supercell when a larger one decided, drawn
    dashed for comparison."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    n = "x".join(str(x) for x in result.supercell)
    if first is not None:
        m = "x".join(str(x) for x in first.supercell)
        ax.plot(first.band_distance, first.band_freq, color="tab:grey", lw=0.8, ls="--")
        ax.plot([], [], color="tab:grey", lw=0.8, ls="--", label=f"{m} supercell")
    ax.plot(result.band_distance, result.band_freq, color="tab:blue", lw=1)
    ax.plot([], [], color="tab:blue", lw=1, label=f"{n} supercell (decides)")
    neg = np.where(result.band_freq < 0, result.band_freq, np.nan)
    ax.plot(result.band_distance, neg, color="tab:red", lw=1.5)
    ax.axhline(0, color="k", lw=0.8)
    exact = is_commensurate(result.band_q, result.supercell)
    ax.plot(result.band_distance[exact], np.zeros(int(exact.sum())), "o", ms=4, mfc="none", color="k",
            label=f"q commensurate with {n} (exact)")
    for x in result.label_positions:
        ax.axvline(x, color="grey", lw=0.5)
    ax.set_xticks(result.label_positions)
    ax.set_xticklabels(["Γ" if s == "G" else s for s in result.labels])
    ax.set_xlim(result.band_distance[0], result.band_distance[-1])
    ax.set_ylabel("Frequency (THz; imaginary drawn negative)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)
    if caption:
        fig.text(0.01, 0.01, "\n".join(textwrap.wrap(caption, 110)), fontsize=7, va="bottom", ha="left")
        fig.tight_layout(rect=(0, 0.12, 1, 1))
    else:
        fig.tight_layout()
    from pto_checks.safe_files import write_with

    write_with(path, lambda tmp: fig.savefig(tmp, dpi=300))  # atomic, never through a link
    plt.close(fig)
