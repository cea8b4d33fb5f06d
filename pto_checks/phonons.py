"""Harmonic phonons by phonopy finite displacements, on the band path of the study.

Frequencies in THz; imaginary modes are reported as negative frequencies (phonopy's convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

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
    """Band structure along :data:`PATH` and frequencies on a q-mesh.

    ``band_q``: (n, 3) reduced q-points; ``band_freq``: (n, branches) THz; ``band_distance``:
    (n,) path coordinate; ``mesh_q``, ``mesh_freq`` likewise on the mesh.
    """

    band_q: np.ndarray
    band_freq: np.ndarray
    band_distance: np.ndarray
    label_positions: list[float]
    labels: list[str]
    mesh_q: np.ndarray
    mesh_freq: np.ndarray
    n_displacements: int

    def all_q_and_freq(self) -> tuple[np.ndarray, np.ndarray]:
        return np.vstack([self.band_q, self.mesh_q]), np.vstack([self.band_freq, self.mesh_freq])


def _to_phonopy(atoms: Atoms):
    from phonopy.structure.atoms import PhonopyAtoms

    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                        scaled_positions=atoms.get_scaled_positions())


def compute_phonons(
    atoms: Atoms,
    calc: Calculator,
    supercell: tuple[int, int, int] = (2, 2, 2),
    displacement: float = 0.01,
    band_points: int = 51,
    mesh: tuple[int, int, int] = (8, 8, 8),
    band_yaml: str | Path | None = None,
) -> PhononResult:
    """Finite-displacement phonons of ``atoms`` (a relaxed unit cell) with ``calc``.

    ``displacement`` in Angstrom.  Force constants are symmetrized (translational sum rule),
    which removes most acoustic noise at Gamma.  Writes phonopy's ``band.yaml`` if asked.
    """
    from phonopy import Phonopy

    ph = Phonopy(_to_phonopy(atoms), supercell_matrix=np.diag(supercell), primitive_matrix=None)
    ph.generate_displacements(distance=displacement)
    forces = []
    for sc in ph.supercells_with_displacements:
        work = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        work.calc = calc
        f = np.array(work.get_forces())
        forces.append(f - f.mean(axis=0))  # remove drift (sum rule)
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    ph.symmetrize_force_constants()

    paths = [[np.array(POINTS[p]) + 0.0 for p in PATH]]
    qpoints = []
    for seg_start, seg_end in zip(paths[0][:-1], paths[0][1:], strict=True):
        qpoints.append(np.linspace(seg_start, seg_end, band_points))
    ph.run_band_structure(qpoints, labels=list(PATH), path_connections=[True] * (len(PATH) - 2) + [False])
    bs = ph.band_structure
    band_q = np.vstack(bs.qpoints)
    band_freq = np.vstack(bs.frequencies)
    dist = np.concatenate(bs.distances)
    label_pos = [float(d[0]) for d in bs.distances] + [float(bs.distances[-1][-1])]
    if band_yaml is not None:
        ph.write_yaml_band_structure(filename=str(band_yaml))
    ph.run_mesh(list(mesh), with_eigenvectors=False, is_gamma_center=True)
    mesh_result = ph.mesh
    return PhononResult(band_q, band_freq, dist, label_pos, list(PATH),
                        np.asarray(mesh_result.qpoints), np.asarray(mesh_result.frequencies),
                        len(ph.supercells_with_displacements))


def is_commensurate(q: np.ndarray, supercell: tuple[int, int, int], tol: float = 1e-6) -> np.ndarray:
    """True for reduced q-points commensurate with the supercell (exact, not interpolated)."""
    qs = np.asarray(q, dtype=float) * np.asarray(supercell, dtype=float)
    return np.all(np.abs(qs - np.rint(qs)) < tol, axis=1)


def most_negative_mode(
    q: np.ndarray,
    freq: np.ndarray,
    supercell: tuple[int, int, int] = (2, 2, 2),
) -> tuple[float, np.ndarray, float, np.ndarray]:
    """Lowest frequency overall, and lowest among the modes the phonon check judges.

    Returns ``(f_min_all, q_at_it, f_min_checked, q_at_that)`` in THz and reduced units.
    Judged: every branch at q-points commensurate with the supercell (there the frequencies are
    exact for the supercell's force constants), and the optic branches (all but the three lowest)
    everywhere.  Acoustic branches between commensurate points are Fourier interpolations whose
    small negative dips near Gamma are an artefact of the finite supercell, not an instability.
    """
    q = np.asarray(q, dtype=float)
    freq = np.asarray(freq, dtype=float)
    i, j = np.unravel_index(np.argmin(freq), freq.shape)
    masked = freq.copy()
    order = np.argsort(freq, axis=1)
    for row in np.where(~is_commensurate(q, supercell))[0]:
        masked[row, order[row, :3]] = np.inf
    k, m = np.unravel_index(np.argmin(masked), masked.shape)
    return float(freq[i, j]), q[i], float(masked[k, m]), q[k]


def plot_bands(result: PhononResult, path: str | Path, title: str = "") -> None:
    """Save the band structure as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.band_distance, result.band_freq, color="tab:blue", lw=1)
    ax.axhline(0, color="k", lw=0.5)
    for x in result.label_positions:
        ax.axvline(x, color="grey", lw=0.5)
    ax.set_xticks(result.label_positions)
    ax.set_xticklabels(["Γ" if s == "G" else s for s in result.labels])
    ax.set_xlim(result.band_distance[0], result.band_distance[-1])
    ax.set_ylabel("Frequency (THz)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=300)
    plt.close(fig)
