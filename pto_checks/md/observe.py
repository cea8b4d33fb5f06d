"""Observation of a run, shared by every engine: what a frame measures (:func:`sample`), when a
frame is unphysical (:func:`blowup`), progress lines (:class:`Progress`) and the one writer of a
run's samples, thinned frames and checkpoint (:class:`Recorder`, attached to a run as ASE
attaches observers to its dynamics).  Units: K, eV, Angstrom, C/m^2, ps.

Checkpoints are data, never pickles: ``checkpoint.npz`` (read with ``allow_pickle=False``) holds
every array of the run's state, and one JSON document (``__meta__``) the rest: format, engine,
task, cache key, ASE version, step, samples, failure, v0 and the engine's state with its arrays
referenced by name (random-generator states as numpy's ``bit_generator.state``).  A checkpoint is
resumed only when its engine, task and key are the ones being run (:func:`checkpoint_problem`);
a legacy ``checkpoint.pkl`` is never unpickled."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from pto_checks import analysis
from pto_checks.md.task import MDTask

CHECKPOINT = "checkpoint.npz"
#: the pickled checkpoint of earlier versions: never loaded (a pickle can run code), moved aside
LEGACY_CHECKPOINT = "checkpoint.pkl"
CHECKPOINT_FORMAT = "pto-checks-md-checkpoint/1"


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


def blowup(atoms: Atoms, v0_per_fu: float, limits: dict[str, Any], temperature_K: float | None = None) -> str | None:
    """Why this frame is unphysical (non-finite energy/forces, atoms too close, cell collapse or
    explosion, a kinetic temperature above ``kinetic_T_max_factor`` times the target
    ``temperature_K``), or None.  ``v0_per_fu``: the starting volume per formula unit (A^3).
    The sustained bound (``kinetic_T_factor`` for ``kinetic_T_samples`` samples) is the Recorder's."""
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
    if temperature_K is not None and "kinetic_T_max_factor" in limits:
        t_kin = float(atoms.get_temperature())
        if not np.isfinite(t_kin) or t_kin > limits["kinetic_T_max_factor"] * temperature_K:
            return (f"kinetic temperature {t_kin:.3g} K, above {limits['kinetic_T_max_factor']:g} times the "
                    f"target {temperature_K:g} K")
    dmin = analysis.min_distance(atoms.positions, atoms.cell.array)
    if dmin < limits["min_distance"]:
        return f"atoms {dmin:.2f} A apart (< {limits['min_distance']} A)"
    return None


# --- checkpoints as data ---------------------------------------------------------------------

def _split(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``obj`` as JSON with its numpy arrays moved into ``arrays`` (referenced by name)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufc":
            raise TypeError(f"checkpoint: array of dtype {obj.dtype} is not plain data")
        name = f"a{len(arrays)}"
        arrays[name] = obj
        return {"__array__": name}
    if isinstance(obj, np.generic):
        return {"__scalar__": obj.dtype.str, "value": obj.item()}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("checkpoint: dict keys must be strings")
        return {k: _split(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, arrays) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint: {type(obj).__name__} is not plain data")


def _join(obj: Any, arrays: Any) -> Any:
    """Inverse of :func:`_split`."""
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return np.array(arrays[obj["__array__"]])
        if set(obj) == {"__scalar__", "value"}:
            return np.dtype(obj["__scalar__"]).type(obj["value"])
        return {k: _join(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, arrays) for v in obj]
    return obj


def write_checkpoint(path: Path, meta: dict[str, Any]) -> None:
    """Write ``meta`` (JSON with numpy arrays anywhere inside) to ``path`` as an npz of plain
    arrays plus one JSON string, through a temporary file and ``os.replace`` (atomic)."""
    arrays: dict[str, np.ndarray] = {}
    doc = json.dumps(_split(meta, arrays))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, __meta__=np.array(doc), **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (no pickles: ``allow_pickle=False``); raises on anything unreadable."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint")
    return _join(meta, arrays)


def checkpoint_problem(workdir: Path, task: MDTask, engine: str, key: str | None = None) -> str | None:
    """Why the checkpoint in ``workdir`` must not be resumed for ``task`` on ``engine`` (under cache
    ``key`` when given), naming the file and what differs; None when there is none or it fits.
    A legacy ``checkpoint.pkl`` is a problem (never unpickled)."""
    legacy = Path(workdir) / LEGACY_CHECKPOINT
    if legacy.exists():
        return (f"{legacy}: a pickled checkpoint of an earlier version; not loaded (unpickling can run "
                "code), starting afresh")
    path = Path(workdir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        d = read_checkpoint(path)
        for k in ("engine", "task", "step", "samples", "frames", "failure", "v0", "state"):
            if k not in d:
                raise ValueError(f"no {k!r}")
    except Exception as exc:
        return f"{path}: unreadable ({type(exc).__name__}: {str(exc)[:200]}), starting afresh"
    if d["engine"] != engine:
        return f"{path}: written by the {d['engine']} engine, not {engine}; starting afresh"
    want = task.to_dict()
    got = d["task"] if isinstance(d["task"], dict) else {}
    # the requested length is not compared: a run's trajectory does not depend on it, and sequential
    # MD extends one run chunk by chunk (engines.run_until); a fixed run's length is in its cache key
    diff = [f"{k} {got.get(k)!r} != {v!r}" for k, v in want.items() if k != "steps" and got.get(k) != v]
    if diff:
        return f"{path}: written for another task ({', '.join(diff)}); starting afresh"
    if key is not None and d.get("key") != key:
        return f"{path}: written for cache entry {d.get('key')}, not {key}; starting afresh"
    return None


def _key_of(workdir: Path) -> str | None:
    """The cache key of a work folder (``<key>.partial``, as :meth:`pto_checks.cache.Cache.claim` names it)."""
    name = Path(workdir).name
    return name[: -len(".partial")] if name.endswith(".partial") else None


def stderr_line(line: str) -> None:
    """Write one line on the real stderr (past pytest's capture)."""
    sys.__stderr__.write(line + "\n")
    sys.__stderr__.flush()


ProgressFn = Callable[[int, dict[str, Any], bool], None]


def human_duration(seconds: float) -> str:
    """``seconds`` as ``42 s``, ``7.5 min``, ``3.2 h`` or ``2.1 days``."""
    if not np.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class SweepClock:
    """The whole sweep's clock: what is left of it (in steps that cost one model call each: an
    ASE run's steps, or a batch's steps, all its replicas at once), the speed measured so far, the
    ETA of the sweep, and once, after ``estimate_after_s`` seconds of MD, the cost of the whole
    sweep under its protocol (with a note when a full-size protocol runs on a CPU).

    ``units``: the steps still to run (cache hits are taken off with :meth:`skip`); ``runs``: how
    many runs (temperatures x ensembles) the sweep computes; ``steps``, ``n_atoms``: per run.
    """

    #: seconds of MD measured before the cost estimate is printed
    estimate_after_s: float = 5.0

    def __init__(self, label: str, protocol: str, device: str, units: int, runs: int, steps: int, n_atoms: int,
                 reduced: bool = True):
        self.label, self.protocol, self.device = label, protocol, device
        self.units, self.runs, self.steps, self.n_atoms = units, runs, steps, n_atoms
        self.reduced = reduced
        self.done = 0
        self.t0: float | None = None
        self.estimated = False

    def skip(self, steps: int) -> None:
        """Take ``steps`` off what is left (a cache hit, or the part of a run a checkpoint resumed)."""
        self.units = max(self.done, self.units - steps)

    def advance(self, steps: int) -> None:
        if self.t0 is None:
            self.t0 = time.perf_counter()
        self.done += max(0, steps)

    @property
    def rate(self) -> float:
        """Steps per second since the first step this session ran (0 before any)."""
        if self.t0 is None or self.done == 0:
            return 0.0
        return self.done / max(time.perf_counter() - self.t0, 1e-9)

    def eta_s(self) -> float:
        rate = self.rate
        return (self.units - self.done) / rate if rate > 0 else float("nan")

    def estimate(self) -> str | None:
        """The one-off cost line, once enough MD has run to measure its speed; else None."""
        if self.estimated or self.t0 is None or time.perf_counter() - self.t0 < self.estimate_after_s:
            return None
        self.estimated = True
        total = self.units / self.rate
        line = (f"[pto-checks] {self.label}: cost of this sweep under protocol '{self.protocol}': {self.runs} "
                f"run(s) x {self.steps} steps x {self.n_atoms} atoms; {self.rate:.2f} steps/s measured over the "
                f"first {self.done} steps on {self.device} -> about {human_duration(total)} in all "
                f"({human_duration(self.eta_s())} left)")
        if self.device == "cpu" and not self.reduced:
            line += (f". Protocol '{self.protocol}' is sized for a GPU (the published study's runs): on a CPU "
                     "this is the estimate above, per sweep. To try a model here, use --protocol smoke "
                     "(minutes) or --protocol quick; for the full protocol, run on a GPU (--device cuda) or "
                     "spread the temperatures over a cluster (--executor, README 'Clusters'). Stopping is safe: "
                     "finished temperatures are cached and a rerun resumes from the last checkpoint")
        return line


class Progress:
    """Progress lines (steps/s, ETA of this run and of the whole sweep, T, c/a) on the real
    stderr; silent when ``enabled`` is False.  ``clock``: the sweep's :class:`SweepClock`, shared
    by every run of the sweep (its ETA and one cost estimate are printed with the lines)."""

    def __init__(self, label: str, total: int, enabled: bool = True, every_s: float = 5.0,
                 write: Callable[[str], None] | None = None, clock: SweepClock | None = None):
        self.label, self.total, self.enabled, self.every_s = label, total, enabled, every_s
        self.write = write or stderr_line
        self.clock = clock
        self.t0 = time.perf_counter()
        self.last = -1e9
        self.start_step = None
        self.prev_step = 0

    def relabel(self, label: str, total: int) -> Progress:
        """A fresh printer with the same settings (one per batch or per run)."""
        return Progress(f"{self.label} {label}".strip(), total, self.enabled, self.every_s, self.write, self.clock)

    def __call__(self, step: int, row: dict[str, Any], final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.start_step is None:  # rates count from the first step seen (after a resume too)
            self.start_step, self.t0, self.last, self.prev_step = step, now, now, step
            if self.clock is not None:
                self.clock.skip(step)  # a resumed run: the steps before its checkpoint are done
                self.clock.advance(0)
            return
        if self.clock is not None:
            self.clock.advance(step - self.prev_step)
        self.prev_step = step
        if not final and now - self.last < self.every_s:
            return
        self.last = now
        done = step - self.start_step
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        lens = sorted([row["a"], row["b"], row["c"]])
        ca = lens[2] / (0.5 * (lens[0] + lens[1]))
        sweep = ""
        if self.clock is not None:
            cost = self.clock.estimate()
            if cost is not None:
                self.write(cost)
            sweep = f", sweep ETA {human_duration(self.clock.eta_s())}"
        self.write(f"[pto-checks] {self.label}: step {step}/{self.total} {rate:.2f} steps/s "
                   f"ETA {eta:.0f} s{sweep} T {row['T_K']:.0f} K c/a {ca:.3f}")


class Recorder:
    """The record of one run in its work folder: samples, thinned frames, failure and checkpoint.

    Both engines feed it frames (:meth:`observe`) and engine state (:meth:`checkpoint`: plain data,
    numpy arrays and JSON); it is the only code that writes a run's samples, frames and
    ``checkpoint.npz``.
    """

    def __init__(self, task: MDTask, workdir: Path, engine: str):
        self.task, self.workdir, self.engine = task, Path(workdir), engine
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.path = self.workdir / CHECKPOINT
        self.key = _key_of(self.workdir)
        self.step = 0
        self.samples: list[dict[str, Any]] = []
        self.frames: list[dict[str, Any]] = []
        self.failure: dict[str, Any] | None = None
        self.v0: float | None = None
        self.hot = 0  #: consecutive samples above the sustained kinetic-temperature bound
        self.state: dict[str, Any] | None = None  #: the engine's own state at the last checkpoint
        self.last_frame: dict[str, Any] | None = None  #: the latest sampled frame (numbers, positions, cell)

    def resume(self) -> bool:
        """Load the checkpoint if one exists and it is this run's (engine, task, cache key); True when
        resumed.  One that does not fit (or a legacy pickle, never loaded) is moved aside with a
        warning naming the file and what differs, and the run starts afresh.  (The MD stage checks
        first and discards the whole work folder: :func:`checkpoint_problem`.)"""
        problem = checkpoint_problem(self.workdir, self.task, self.engine, self.key)
        if problem is not None:
            self.discard(problem)
            return False
        if not self.path.is_file():
            return False
        d = read_checkpoint(self.path)
        self.step, self.samples, self.frames, self.failure = d["step"], d["samples"], d["frames"], d["failure"]
        self.v0, self.state, self.hot = d["v0"], d["state"], int(d.get("hot", 0))
        self.last_frame = d.get("last_frame")  # numbers/positions/cell as arrays (sequential MD continues from it)
        return True

    def discard(self, problem: str) -> None:
        """Move the checkpoint files aside (``*.corrupt-<UTC time>``) with a warning naming ``problem``."""
        from pto_checks.cache import CacheWarning

        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for name in (LEGACY_CHECKPOINT, CHECKPOINT):
            if (self.workdir / name).exists():
                os.replace(self.workdir / name, self.workdir / f"{name}.corrupt-{stamp}")
        warnings.warn(CacheWarning(f"pto-checks MD: {problem}"), stacklevel=3)

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
        target = self.task.temperature_K
        reason = blowup(atoms, self.v0, limits, target)
        if reason is None and "kinetic_T_factor" in limits:
            t_kin = float(atoms.get_temperature())
            self.hot = self.hot + 1 if t_kin > limits["kinetic_T_factor"] * target else 0
            if self.hot >= limits["kinetic_T_samples"]:
                reason = (f"kinetic temperature above {limits['kinetic_T_factor']:g} times the target {target:g} K "
                          f"for {self.hot} samples in a row (last {t_kin:.0f} K)")
                stretch = self.samples[len(self.samples) - (self.hot - 1):]  # not kept as samples
                if stretch:
                    first = stretch[0]["step"]
                    self.samples = self.samples[: len(self.samples) - len(stretch)]
                    self.frames = [f for f in self.frames if f["step"] < first]
        if reason is not None:
            self.fail(step, reason)
            return None
        row = sample(atoms, step, self.task)
        self.samples.append(row)
        self.last_frame = {"step": step, "numbers": atoms.numbers.copy(), "positions": atoms.positions.copy(),
                           "cell": atoms.cell.array.copy()}
        if step > 0 and len(self.samples) % self.task.trajectory_every == 0:
            self.frames.append({"step": step, "numbers": atoms.numbers.copy(),
                                "positions": atoms.positions.copy(), "cell": atoms.cell.array.copy(),
                                "time_ps": row["time_ps"], "T_K": row["T_K"], "epot_eV": row["epot_eV"],
                                "stress_eV_A3": _stress(atoms)})
        return row

    def checkpoint(self, state: dict[str, Any] | None = None) -> None:
        """Write ``checkpoint.npz`` atomically (``state``: the engine's state to resume from, plain
        data: numpy arrays, numbers, strings, lists and dicts)."""
        import ase

        if state is not None:
            self.state = state
        write_checkpoint(self.path, {
            "format": CHECKPOINT_FORMAT, "engine": self.engine, "task": self.task.to_dict(), "key": self.key,
            "ase_version": ase.__version__, "step": self.step, "samples": self.samples, "frames": self.frames,
            "failure": self.failure, "state": self.state, "v0": self.v0, "hot": self.hot,
            "last_frame": self.last_frame})

    def result(self) -> dict[str, Any]:
        """``{"samples", "frames", "failure", "last_frame"}`` (failure: ``{step, reason}`` or None;
        last_frame: the latest sampled frame, the start of a run that continues from this one)."""
        return {"samples": self.samples, "frames": self.frames, "failure": self.failure,
                "last_frame": self.last_frame}


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

    from pto_checks.safe_files import replacing, write_with

    if res["samples"]:  # through a fresh file that replaces the old: a planted link is never written through
        with replacing(folder / "samples.csv", shared=False) as tmp, tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(res["samples"][0]))
            w.writeheader()
            w.writerows(res["samples"])
    frames = [frame_atoms(f) for f in res["frames"]]
    if frames:
        write_with(folder / "trajectory.extxyz", lambda tmp: ase.io.write(tmp, frames, format="extxyz"))


def md_valid(folder: Path, data: dict[str, Any]) -> None:
    """Validator of an MD entry (the files :func:`write_outputs` writes; used by the fixed and the
    sequential sweep): ``samples.csv`` parses and holds the number of samples recorded
    (``n_samples_stored``); the failure is None or ``{step, reason}``."""
    from pto_checks.cache import CorruptEntry, check_file

    n = data.get("n_samples_stored")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise CorruptEntry(folder / "meta.json", "'n_samples_stored' missing")
    failure = data.get("failure")
    if failure is not None and not (isinstance(failure, dict) and {"step", "reason"} <= failure.keys()):
        raise CorruptEntry(folder / "meta.json", "'failure' malformed")
    if n:
        got = check_file(folder, "samples.csv", analysis.read_samples)
        if len(got) != n:
            raise CorruptEntry(folder / "samples.csv", f"{len(got)} samples, {n} recorded (truncated?)")
        for i, row in enumerate(got):  # a blow-up ends a run before a non-finite sample: NaN here was not written by it
            bad = [k for k, v in row.items() if not np.isfinite(v)]
            if bad:
                raise CorruptEntry(folder / "samples.csv",
                                   f"row {i + 1}: {bad[0]} = {row[bad[0]]} is not a finite number")
