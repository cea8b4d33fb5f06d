"""A model's energies, forces and stresses on the AIMD frames, and its errors against the DFT labels.

:func:`predict` runs the model's ASE calculator on every frame of a :class:`~.data.FrameSet`;
:func:`evaluate` caches that per (model fingerprint, data checksums, subsample); :func:`errors`
turns predictions and labels into :class:`TemperatureErrors` (typed, units in the field names).

Definitions (per temperature set):

- force errors over all N x 3 components: RMSE, MAE (eV/A), per Cartesian component and per
  species; the DFT force scale is the rms of the DFT force components.
- relative energy: each frame's energy minus the mean over the frames of the set, model vs DFT
  (so the absolute energy scales, which differ between codes and functionals, cancel); RMSE and
  MAE in meV/atom.
- stress: all nine components of ASE's stress (eV/A^3; DFT from ``-virial / V``), errors in GPa;
  ``stress_offset_GPa`` is the mean pressure difference (model - DFT, pressure = -trace/3), the part
  a volume shift of the model's equilibrium (e.g. a PBE model on PBEsol cells) produces.
- statistical error of each RMSE from the per-frame mean squares taken as the time series they
  are (consecutive AIMD frames are correlated): their statistical inefficiency g (pymbar, via
  :func:`pto_checks.statistics.series_statistics`, the whole set as production) gives
  ``n_eff = n / g`` independent frames and the standard error ``std sqrt(g / n)``; the verdict's
  interval uses Student's t with ``n_eff - 1`` degrees of freedom.  Measured on the PBEsol frames
  (per-frame mean square of the DFT forces): g = 14.0 / 14.2 / 12.8 with every frame at 300 / 450 /
  900 K (treating them as independent shrinks the error bar 3.6-3.8 times), g = 1.0 with every 10th.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from ase import units
from ase.calculators.calculator import Calculator

from pto_checks.accuracy.data import FrameSet

#: Bump when the evaluation changes what it stores.
STAGE_VERSION = 2


@dataclass
class Predictions:
    """A model's outputs on the frames of one set: ``energy`` (n,) eV, ``forces`` (n, N, 3) eV/A,
    ``stress`` (n, 3, 3) eV/A^3 (ASE convention), ``seconds`` of wall time."""

    energy: np.ndarray
    forces: np.ndarray
    stress: np.ndarray
    seconds: float = 0.0

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"energy": self.energy, "forces": self.forces, "stress": self.stress,
                "seconds": np.array(self.seconds)}

    @classmethod
    def from_arrays(cls, d: Any) -> Predictions:
        return cls(np.asarray(d["energy"]), np.asarray(d["forces"]), np.asarray(d["stress"]),
                   float(d["seconds"]))


def _voigt_to_matrix(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, dtype=float)
    if s.shape == (3, 3):
        return s
    xx, yy, zz, yz, xz, xy = s
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def predict(calculator: Calculator, frames: FrameSet,
            progress: Callable[[int, int], None] | None = None) -> Predictions:
    """Energy, forces and stress of ``calculator`` on every frame of ``frames``."""
    n = len(frames)
    energy = np.empty(n)
    forces = np.empty((n, frames.n_atoms, 3))
    stress = np.empty((n, 3, 3))
    t0 = time.perf_counter()
    for i in range(n):
        atoms = frames.atoms(i)
        atoms.calc = calculator
        energy[i] = atoms.get_potential_energy()
        forces[i] = atoms.get_forces()
        stress[i] = _voigt_to_matrix(atoms.get_stress(voigt=True))
        if progress is not None:
            progress(i + 1, n)
    return Predictions(energy, forces, stress, time.perf_counter() - t0)


@dataclass
class TemperatureErrors:
    """Errors of one model on the frames of one temperature. Units in the names; ``n_frames`` used."""

    temperature_K: int
    n_frames: int
    n_frames_total: int
    n_atoms: int
    # forces
    force_rmse_eV_A: float
    force_mae_eV_A: float
    force_rmse_se_eV_A: float
    dft_force_rms_eV_A: float
    force_rmse_over_dft_rms: float
    force_rmse_component_eV_A: dict[str, float]
    force_mae_component_eV_A: dict[str, float]
    force_rmse_species_eV_A: dict[str, float]
    force_mae_species_eV_A: dict[str, float]
    dft_force_rms_species_eV_A: dict[str, float]
    # relative energies
    energy_rmse_meV_atom: float
    energy_mae_meV_atom: float
    energy_rmse_se_meV_atom: float
    dft_energy_std_meV_atom: float
    # stress
    stress_rmse_GPa: float
    stress_mae_GPa: float
    stress_rmse_se_GPa: float
    stress_offset_GPa: float
    stress_rmse_after_offset_GPa: float
    dft_stress_std_GPa: float
    dft_pressure_mean_GPa: float
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    #: effectively independent frames behind each RMSE's standard error (n / g)
    force_rmse_n_eff: float = float("nan")
    energy_rmse_n_eff: float = float("nan")
    stress_rmse_n_eff: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _rmse_se(per_frame_ms: np.ndarray) -> tuple[float, float]:
    """Standard error of sqrt(mean(per_frame_ms)) and the effective number of independent frames:
    the per-frame mean squares are a correlated time series (statistical inefficiency g, no
    frames discarded), se(mean) = std sqrt(g / n), and se(sqrt(m)) = se(m) / (2 sqrt(m))."""
    from pto_checks.statistics import series_statistics

    n = len(per_frame_ms)
    mse = float(np.mean(per_frame_ms))
    if mse <= 0:
        return 0.0, float(n)  # no error at all: nothing uncertain
    st = series_statistics(np.asarray(per_frame_ms, dtype=float), t0=0)
    if not np.isfinite(st.sem):
        return float("nan"), float(st.n_eff)
    return float(st.sem / (2 * np.sqrt(mse))), float(st.n_eff)


def errors(frames: FrameSet, pred: Predictions) -> TemperatureErrors:
    """Errors of ``pred`` against the DFT labels of ``frames`` (definitions in the module docstring)."""
    n_at = frames.n_atoms
    df = pred.forces - frames.forces
    symbols = np.array(frames.symbols)
    comp = {ax: _rms(df[..., k]) for k, ax in enumerate("xyz")}
    comp_mae = {ax: float(np.mean(np.abs(df[..., k]))) for k, ax in enumerate("xyz")}
    species = list(dict.fromkeys(frames.symbols))
    sp_rmse = {s: _rms(df[:, symbols == s]) for s in species}
    sp_mae = {s: float(np.mean(np.abs(df[:, symbols == s]))) for s in species}
    sp_dft = {s: _rms(frames.forces[:, symbols == s]) for s in species}
    f_rmse = _rms(df)
    f_dft = _rms(frames.forces)

    rel_model = pred.energy - pred.energy.mean()
    rel_dft = frames.energy - frames.energy.mean()
    de = (rel_model - rel_dft) / n_at * 1000.0  # meV/atom
    f_se, f_neff = _rmse_se(np.mean(df.reshape(len(df), -1) ** 2, axis=1))
    e_se, e_neff = _rmse_se(de**2)

    ds = (pred.stress - frames.stress) / units.GPa  # GPa
    offset = float(np.mean(-np.trace(ds, axis1=1, axis2=2) / 3.0))  # pressure difference
    ds_shifted = ds + offset * np.eye(3)
    dft_gpa = frames.stress / units.GPa
    s_se, s_neff = _rmse_se(np.mean(ds.reshape(len(ds), -1) ** 2, axis=1))
    return TemperatureErrors(
        temperature_K=frames.temperature_K, n_frames=len(frames), n_frames_total=frames.n_total, n_atoms=n_at,
        force_rmse_eV_A=f_rmse, force_mae_eV_A=float(np.mean(np.abs(df))),
        force_rmse_se_eV_A=f_se, force_rmse_n_eff=f_neff,
        dft_force_rms_eV_A=f_dft, force_rmse_over_dft_rms=f_rmse / f_dft,
        force_rmse_component_eV_A=comp, force_mae_component_eV_A=comp_mae,
        force_rmse_species_eV_A=sp_rmse, force_mae_species_eV_A=sp_mae, dft_force_rms_species_eV_A=sp_dft,
        energy_rmse_meV_atom=_rms(de), energy_mae_meV_atom=float(np.mean(np.abs(de))),
        energy_rmse_se_meV_atom=e_se, energy_rmse_n_eff=e_neff,
        dft_energy_std_meV_atom=float(np.std(frames.energy) / n_at * 1000.0),
        stress_rmse_GPa=_rms(ds), stress_mae_GPa=float(np.mean(np.abs(ds))),
        stress_rmse_se_GPa=s_se, stress_rmse_n_eff=s_neff,
        stress_offset_GPa=offset, stress_rmse_after_offset_GPa=_rms(ds_shifted),
        dft_stress_std_GPa=float(np.std(dft_gpa - dft_gpa.mean(axis=0))),
        dft_pressure_mean_GPa=float(np.mean(-np.trace(dft_gpa, axis1=1, axis2=2) / 3.0)),
        seconds=pred.seconds,
    )


def growth(per_temperature: list[TemperatureErrors], key: str) -> dict[str, float]:
    """How an error grows with temperature: values per T, ratio highest/lowest T, and the slope
    (per 100 K, least squares) of ``key`` (a float field of :class:`TemperatureErrors`)."""
    rows = sorted(per_temperature, key=lambda e: e.temperature_K)
    t = np.array([r.temperature_K for r in rows], dtype=float)
    y = np.array([getattr(r, key) for r in rows], dtype=float)
    slope = float(np.polyfit(t, y, 1)[0] * 100.0) if len(t) >= 2 else float("nan")
    return {"values": {str(int(a)): float(b) for a, b in zip(t, y, strict=True)},
            "ratio_high_low": float(y[-1] / y[0]) if y[0] else float("nan"), "slope_per_100K": slope}
