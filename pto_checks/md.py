"""Molecular dynamics: one temperature of a sweep, behind a small engine interface.

An :class:`MDTask` says what to run (ensemble, integrator, temperature, cell, steps, seed ...);
an engine runs it with a model's ASE calculator into a work folder and returns the sampled
time series.  :class:`ASEEngine` is the reference engine (ASE integrators, one replica at a
time); :class:`pto_checks.md_batched.BatchedEngine` advances all temperatures (and both
ensembles) at once through the same ``run_many``.

Work folders hold ``checkpoint.pkl`` (positions, momenta, cell, thermostat/barostat state and
random state: the pickled ASE dynamics object without its calculator, written atomically), so a
killed run resumes where it stopped.  Units: fs, K, Angstrom, eV, C/m^2.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator

from pto_checks import analysis, structures

ENSEMBLES = ("npt", "nvt")
NPT_INTEGRATORS = ("melchionna", "mtk")
#: what the batched engine (:mod:`pto_checks.md_batched`) integrates, per ensemble
BATCHED_INTEGRATORS = {"npt": ("melchionna",), "nvt": ("langevin",)}


@dataclass(frozen=True)
class MDTask:
    """One MD run.  ``integrator``: ``melchionna`` (ASE NPT, the study's) or ``mtk``
    (ASE MaskedMTKNPT, a, b, c independent, no shear) for NPT; ``langevin`` for NVT."""

    ensemble: str
    integrator: str
    temperature_K: float
    supercell: int
    a: float
    c: float
    steps: int
    timestep_fs: float
    seed: int
    ttime_fs: float
    pfactor_ase: float
    mtk_tdamp_fs: float
    mtk_pdamp_fs: float
    friction_per_fs: float
    sample_every: int
    trajectory_every: int
    checkpoint_every: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def reps(self) -> tuple[int, int, int]:
        return (self.supercell,) * 3


def initial_atoms(task: MDTask) -> Atoms:
    """Polar tetragonal supercell at (a, c) with Maxwell-Boltzmann velocities (seeded)."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    atoms = structures.supercell(structures.tetragonal(a=task.a, c=task.c), task.supercell)
    rng = np.random.default_rng(task.seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=task.temperature_K, rng=rng)
    Stationary(atoms)
    return atoms


def make_dynamics(task: MDTask, atoms: Atoms):
    """The ASE integrator of ``task`` (velocities must already be set: MTK reads them at init)."""
    dt = task.timestep_fs * units.fs
    if task.ensemble == "nvt":
        from ase.md.langevin import Langevin

        return Langevin(atoms, timestep=dt, temperature_K=task.temperature_K,
                        friction=task.friction_per_fs / units.fs,
                        rng=np.random.default_rng(task.seed + 1))
    if task.integrator == "melchionna":
        try:  # ASE >= 3.27 name of the same class
            from ase.md.melchionna import MelchionnaNPT as NPT
        except ImportError:  # pragma: no cover
            from ase.md.npt import NPT

        return NPT(atoms, timestep=dt, temperature_K=task.temperature_K, externalstress=0.0,
                   ttime=task.ttime_fs * units.fs, pfactor=task.pfactor_ase, mask=np.eye(3, dtype=int))
    if task.integrator == "mtk":
        from ase.md.nose_hoover_chain import MaskedMTKNPT

        return MaskedMTKNPT(atoms, timestep=dt, temperature_K=task.temperature_K, pressure_au=0.0,
                            tdamp=task.mtk_tdamp_fs * units.fs, pdamp=task.mtk_pdamp_fs * units.fs,
                            mask=(True, True, True))
    raise ValueError(f"unknown integrator {task.integrator!r} for {task.ensemble}")


def sample(atoms: Atoms, step: int, task: MDTask) -> dict[str, Any]:
    """Observables of one frame: T (K), E_pot (eV), per-cell a, b, c (A), P (C/m^2), order."""
    cell = atoms.cell.array
    pos = atoms.positions
    lengths = analysis.unit_cell_lengths(cell, task.reps)
    assignment = analysis.site_assignment(pos, cell, task.reps)  # shared by both observables
    pol = analysis.polarization(pos, cell, task.reps, assignment)
    order = analysis.order_metrics(pos, cell, task.reps, assignment)
    return {
        "step": step,
        "time_ps": step * task.timestep_fs / 1000.0,
        "T_K": float(atoms.get_temperature()),
        "epot_eV": float(atoms.get_potential_energy()),
        "a": float(lengths[0]), "b": float(lengths[1]), "c": float(lengths[2]),
        "Px": float(pol["P"][0]), "Py": float(pol["P"][1]), "Pz": float(pol["P"][2]),
        "P_local_abs": pol["local_abs"],
        "lindemann": order["lindemann"],
        "order": order["order"],
        "volume_per_fu": float(atoms.get_volume() / (len(atoms) / 5)),
    }


def blowup(atoms: Atoms, v0_per_fu: float, limits: dict[str, Any]) -> str | None:
    """Why this frame is unphysical (non-finite energy/forces, atoms too close, cell collapse or
    explosion), or None."""
    try:
        e = atoms.get_potential_energy()
        f = atoms.get_forces()
    except Exception as exc:  # a model that crashes on a configuration has failed on it
        return f"the model raised {type(exc).__name__}: {exc}"
    if not np.isfinite(e) or not np.all(np.isfinite(f)):
        return "non-finite energy or forces"
    vol = atoms.get_volume() / (len(atoms) / 5)
    lo, hi = limits["volume_range"]
    if not lo * v0_per_fu <= vol <= hi * v0_per_fu:
        return f"cell {'collapse' if vol < lo * v0_per_fu else 'explosion'}: volume {vol:.1f} A^3/f.u."
    dmin = analysis.min_distance(atoms.positions, atoms.cell.array)
    if dmin < limits["min_distance"]:
        return f"atoms {dmin:.2f} A apart (< {limits['min_distance']} A)"
    return None


def _atomic_pickle(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


class Progress:
    """Progress lines (steps/s, ETA, T, c/a) on the real stderr; silent when ``enabled`` is False."""

    def __init__(self, label: str, total: int, enabled: bool = True, every_s: float = 5.0,
                 write: Callable[[str], None] | None = None):
        self.label, self.total, self.enabled, self.every_s = label, total, enabled, every_s
        self.write = write or self._stderr
        self.t0 = time.perf_counter()
        self.last = -1e9
        self.start_step = None

    def __call__(self, step: int, row: dict[str, Any], final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.start_step is None:  # rates count from the first step seen (after a resume too)
            self.start_step, self.t0, self.last = step, now, now
            return
        if not final and now - self.last < self.every_s:
            return
        self.last = now
        done = step - self.start_step
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        lens = sorted([row["a"], row["b"], row["c"]])
        ca = lens[2] / (0.5 * (lens[0] + lens[1]))
        self.write(f"[pto-checks] {self.label}: step {step}/{self.total} {rate:.2f} steps/s "
                   f"ETA {eta:.0f} s T {row['T_K']:.0f} K c/a {ca:.3f}")

    @staticmethod
    def _stderr(line: str) -> None:
        sys.__stderr__.write(line + "\n")
        sys.__stderr__.flush()


class Engine(Protocol):
    """What the MD stage needs from an engine."""

    name: str

    def run(self, task: MDTask, calc: Calculator, workdir: Path,
            progress: Callable[[int, dict[str, Any], bool], None] | None = None,
            limits: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def run_many(self, tasks: Sequence[MDTask], calc: Calculator, workdirs: Sequence[Path],
                 **kwargs: Any) -> list[dict[str, Any]]: ...


class ASEEngine:
    """Reference engine: ASE integrators, one replica at a time, checkpointed."""

    name = "ase"

    def run(self, task: MDTask, calc: Calculator, workdir: Path,
            progress: Callable[[int, dict[str, Any], bool], None] | None = None,
            limits: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run (or resume) ``task`` in ``workdir``; return ``{"samples", "frames", "failure"}``.

        A blow-up stops the run early and is recorded in ``failure`` ({step, reason}); it is a
        result, not an exception.
        """
        from pto_checks.reference import tolerance

        limits = limits or tolerance("melting")
        workdir.mkdir(parents=True, exist_ok=True)
        ckpt = workdir / "checkpoint.pkl"
        if ckpt.is_file():
            with ckpt.open("rb") as fh:
                state = pickle.load(fh)
            dyn, step, samples, frames, failure = (state["dyn"], state["step"], state["samples"],
                                                   state["frames"], state["failure"])
            atoms = dyn.atoms
            atoms.calc = calc
            v0 = state["v0"]
        else:
            atoms = initial_atoms(task)
            atoms.calc = calc
            v0 = atoms.get_volume() / (len(atoms) / 5)
            dyn = make_dynamics(task, atoms)
            step, samples, frames = 0, [], []
            failure = blowup(atoms, v0, limits)
            if failure is None:
                samples.append(sample(atoms, 0, task))
            else:
                failure = {"step": 0, "reason": failure}

        def checkpoint() -> None:
            atoms.calc = None
            # ASE < 3.24 keeps an open log file (os.devnull) on the dynamics: not picklable, not state
            held = {k: v for k, v in vars(dyn).items() if isinstance(v, io.IOBase) or k == "_lazy_cache"}
            for k in held:
                setattr(dyn, k, {} if k == "_lazy_cache" else None)
            try:
                _atomic_pickle({"dyn": dyn, "step": step, "samples": samples, "frames": frames,
                                "failure": failure, "v0": v0, "task": task.to_dict()}, ckpt)
            finally:
                atoms.calc = calc
                for k, v in held.items():
                    setattr(dyn, k, v)

        while failure is None and step < task.steps:
            n = min(task.sample_every, task.steps - step)
            try:
                dyn.run(n)
            except Exception as exc:  # e.g. ASE NPT refusing a sheared cell, a model crash
                failure = {"step": step, "reason": f"integrator/model raised {type(exc).__name__}: {exc}"}
                break
            step += n
            reason = blowup(atoms, v0, limits)
            if reason is not None:
                failure = {"step": step, "reason": reason}
                break
            row = sample(atoms, step, task)
            samples.append(row)
            if len(samples) % task.trajectory_every == 0:
                frames.append({"step": step, "numbers": atoms.numbers.copy(),
                               "positions": atoms.positions.copy(), "cell": atoms.cell.array.copy()})
            if progress:
                progress(step, row, step >= task.steps)
            if step % task.checkpoint_every == 0 or step >= task.steps:
                checkpoint()
        checkpoint()
        return {"samples": samples, "frames": frames, "failure": failure}

    def run_many(self, tasks: Sequence[MDTask], calc: Calculator, workdirs: Sequence[Path],
                 **kwargs: Any) -> list[dict[str, Any]]:
        """Run tasks one after the other (a batched engine advances them together)."""
        return [self.run(t, calc, w, **kwargs) for t, w in zip(tasks, workdirs, strict=True)]


ENGINES: dict[str, Engine] = {"ase": ASEEngine()}


def engine(name: str) -> Engine:
    """The engine called ``name``: ``ase`` (reference) or ``batched`` (:mod:`pto_checks.md_batched`)."""
    if name == "batched" and name not in ENGINES:
        from pto_checks.md_batched import BatchedEngine

        ENGINES[name] = BatchedEngine()
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown MD engine {name!r}; known: ase, batched") from None
