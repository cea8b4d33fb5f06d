"""Observation of a run, shared by every engine: what a frame measures (:func:`sample`), when a
frame is unphysical (:func:`blowup`), progress lines (:class:`Progress`) and the one writer of a
run's samples, thinned frames and checkpoint (:class:`Recorder`, attached to a run as ASE
attaches observers to its dynamics).  Units: K, eV, Angstrom, C/m^2, ps."""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from pto_checks import analysis
from pto_checks.md.task import MDTask

CHECKPOINT = "checkpoint.pkl"


def sample(atoms: Atoms, step: int, task: MDTask) -> dict[str, Any]:
    """Observables of one frame: T (K), E_pot (eV), per-cell a, b, c (A), P (C/m^2), order."""
    cell = atoms.cell.array
    pos = atoms.positions
    lengths = analysis.unit_cell_lengths(cell, task.reps)
    assignment = analysis.site_assignment(pos, cell, task.reps, atoms.numbers)  # shared by both observables
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
    explosion), or None.  ``v0_per_fu``: the starting volume per formula unit (A^3)."""
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


def atomic_pickle(obj: Any, path: Path) -> None:
    """Pickle ``obj`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def stderr_line(line: str) -> None:
    """Write one line on the real stderr (past pytest's capture)."""
    sys.__stderr__.write(line + "\n")
    sys.__stderr__.flush()


ProgressFn = Callable[[int, dict[str, Any], bool], None]


class Progress:
    """Progress lines (steps/s, ETA, T, c/a) on the real stderr; silent when ``enabled`` is False."""

    def __init__(self, label: str, total: int, enabled: bool = True, every_s: float = 5.0,
                 write: Callable[[str], None] | None = None):
        self.label, self.total, self.enabled, self.every_s = label, total, enabled, every_s
        self.write = write or stderr_line
        self.t0 = time.perf_counter()
        self.last = -1e9
        self.start_step = None

    def relabel(self, label: str, total: int) -> Progress:
        """A fresh printer with the same settings (one per batch or per run)."""
        return Progress(f"{self.label} {label}".strip(), total, self.enabled, self.every_s, self.write)

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


class Recorder:
    """The record of one run in its work folder: samples, thinned frames, failure and checkpoint.

    Both engines feed it frames (:meth:`observe`) and engine state (:meth:`checkpoint`); it is
    the only code that writes a run's samples, frames and ``checkpoint.pkl``.
    """

    def __init__(self, task: MDTask, workdir: Path, engine: str):
        self.task, self.workdir, self.engine = task, Path(workdir), engine
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.path = self.workdir / CHECKPOINT
        self.step = 0
        self.samples: list[dict[str, Any]] = []
        self.frames: list[dict[str, Any]] = []
        self.failure: dict[str, Any] | None = None
        self.v0: float | None = None
        self.state: dict[str, Any] | None = None  #: the engine's own state at the last checkpoint

    def resume(self) -> bool:
        """Load the checkpoint of this engine if one exists; True when resumed."""
        if not self.path.is_file():
            return False
        with self.path.open("rb") as fh:
            d = pickle.load(fh)
        if d.get("engine", "ase") != self.engine:
            return False
        self.step, self.samples, self.frames, self.failure = d["step"], d["samples"], d["frames"], d["failure"]
        self.v0 = d["v0"]
        self.state = d["state"] if "state" in d else d.get("dyn")  # checkpoints before the md package
        return True

    @property
    def done(self) -> bool:
        return self.failure is not None or self.step >= self.task.steps

    def fail(self, step: int, reason: str) -> None:
        self.failure = {"step": step, "reason": reason}

    def observe(self, atoms: Atoms, step: int, limits: dict[str, Any]) -> dict[str, Any] | None:
        """Check frame ``step`` for a blow-up (then record the failure), else sample it (and keep
        it as a trajectory frame every ``trajectory_every`` samples); return the row or None."""
        self.step = step
        if self.v0 is None:
            self.v0 = atoms.get_volume() / (len(atoms) / 5)
        reason = blowup(atoms, self.v0, limits)
        if reason is not None:
            self.fail(step, reason)
            return None
        row = sample(atoms, step, self.task)
        self.samples.append(row)
        if step > 0 and len(self.samples) % self.task.trajectory_every == 0:
            self.frames.append({"step": step, "numbers": atoms.numbers.copy(),
                                "positions": atoms.positions.copy(), "cell": atoms.cell.array.copy(),
                                "time_ps": row["time_ps"], "T_K": row["T_K"], "epot_eV": row["epot_eV"],
                                "stress_eV_A3": _stress(atoms)})
        return row

    def checkpoint(self, state: Any = None) -> None:
        """Write ``checkpoint.pkl`` atomically (``state``: the engine's state to resume from)."""
        if state is not None:
            self.state = state
        atomic_pickle({"engine": self.engine, "step": self.step, "samples": self.samples,
                       "frames": self.frames, "failure": self.failure, "state": self.state, "v0": self.v0,
                       "task": self.task.to_dict()}, self.path)

    def result(self) -> dict[str, Any]:
        """``{"samples", "frames", "failure"}`` (failure: ``{step, reason}`` or None)."""
        return {"samples": self.samples, "frames": self.frames, "failure": self.failure}


def _stress(atoms: Atoms) -> np.ndarray | None:
    """The frame's stress (Voigt, eV/A^3, ASE's sign): what the calculator already computed, else
    asked for when it implements stress (only on the thinned frames), else None."""
    calc = atoms.calc
    if calc is None:
        return None
    got = getattr(calc, "results", {}).get("stress")
    if got is None and "stress" in getattr(calc, "implemented_properties", ()) and \
            type(calc).__name__ != "SinglePointCalculator":
        try:
            got = atoms.get_stress()
        except Exception:  # a model without a stress it can give: the frame has none
            return None
    return None if got is None else np.array(got, dtype=float).reshape(-1).copy()


def frame_atoms(frame: dict[str, Any]) -> Atoms:
    """A recorded frame as Atoms: ``info`` carries ``step``, ``time_ps`` (ps), ``T_K`` (K) and, as
    extxyz writes them, the potential energy (eV) and stress (eV/A^3) through a single-point
    calculator (``atoms.get_potential_energy()``, ``atoms.get_stress()`` after reading back)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms(frame["numbers"], positions=frame["positions"], cell=frame["cell"], pbc=True)
    atoms.info.update({k: frame[k] for k in ("step", "time_ps", "T_K") if frame.get(k) is not None})
    results = {}
    if frame.get("epot_eV") is not None:
        results["energy"] = float(frame["epot_eV"])
    if frame.get("stress_eV_A3") is not None:
        results["stress"] = np.asarray(frame["stress_eV_A3"], dtype=float)
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def write_outputs(folder: Path, res: dict[str, Any]) -> None:
    """Write a finished run's ``samples.csv`` and thinned ``trajectory.extxyz`` into ``folder``
    (each frame with step, time, temperature, potential energy and stress: :func:`frame_atoms`)."""
    import csv

    import ase.io

    if res["samples"]:
        with (folder / "samples.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(res["samples"][0]))
            w.writeheader()
            w.writerows(res["samples"])
    frames = [frame_atoms(f) for f in res["frames"]]
    if frames:
        ase.io.write(folder / "trajectory.extxyz", frames)
