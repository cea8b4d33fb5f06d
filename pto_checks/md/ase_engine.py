"""The reference MD engine: ASE's integrators, one replica at a time, through the model's ASE
calculator; checkpointed as data (:func:`export_state` / :func:`restore_state`: the atoms' arrays
and cell, and the integrator's numbers and arrays: Melchionna's h, eta, zeta, q and their past
values, Langevin's generator state, MTK's thermostat and barostat chain variables), never as a
pickle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from pto_checks.md.observe import ProgressFn, Recorder
from pto_checks.md.task import Ensemble, Integrator, MDTask, start_atoms


def make_dynamics(task: MDTask, atoms: Atoms):
    """The ASE integrator of ``task`` (velocities must already be set: MTK reads them at init)."""
    dt = task.timestep_fs * units.fs
    if task.ensemble is Ensemble.NVT:
        from ase.md.langevin import Langevin

        return Langevin(atoms, timestep=dt, temperature_K=task.temperature_K,
                        friction=task.friction_per_fs / units.fs,
                        rng=np.random.default_rng(task.seed + 1))
    if task.integrator is Integrator.MELCHIONNA:
        try:  # ASE >= 3.27 name of the same class
            from ase.md.melchionna import MelchionnaNPT as NPT
        except ImportError:  # pragma: no cover
            from ase.md.npt import NPT

        return NPT(atoms, timestep=dt, temperature_K=task.temperature_K, externalstress=0.0,
                   ttime=task.ttime_fs * units.fs, pfactor=task.pfactor_ase, mask=np.eye(3, dtype=int))
    from ase.md.nose_hoover_chain import MaskedMTKNPT

    return MaskedMTKNPT(atoms, timestep=dt, temperature_K=task.temperature_K, pressure_au=0.0,
                        tdamp=task.mtk_tdamp_fs * units.fs, pdamp=task.mtk_pdamp_fs * units.fs,
                        mask=(True, True, True))


def _calculator(model: Any):
    """The ASE calculator of a LoadedModel (or a bare calculator, as the harness's tests pass)."""
    return getattr(model, "calculator", model)


#: attributes of an ASE dynamics object that are not its state (the atoms are saved on their own)
_NOT_STATE = frozenset({"atoms", "logfile", "observers", "comm", "trajectory", "_orig_trajectory", "_master",
                        "_lazy_cache"})


def _plain(v: Any) -> bool:
    if isinstance(v, np.ndarray):
        return v.dtype.kind in "biufc"
    return v is None or isinstance(v, (bool, int, float, str, np.generic))


def _attrs(obj: Any) -> dict[str, Any]:
    """The state of an ASE integrator object as data: its numbers, numeric arrays, numpy generators
    (``bit_generator.state``) and the ASE objects it holds (MTK's thermostat and barostat chains),
    by attribute name.  Anything else (log files, observers, MPI, atoms) is not state."""
    out: dict[str, Any] = {}
    for k, v in vars(obj).items():
        if k in _NOT_STATE:
            continue
        if isinstance(v, np.random.Generator):
            out[k] = {"generator": v.bit_generator.state}
        elif _plain(v):
            out[k] = {"value": v}
        elif type(v).__module__.startswith("ase.md"):
            out[k] = {"object": type(v).__name__, "attrs": _attrs(v)}
    return out


def _set_attrs(obj: Any, saved: dict[str, Any], where: str) -> None:
    """Restore :func:`_attrs` onto a freshly built ``obj`` of the same class; raise ValueError when
    the two do not hold the same state (another ASE version's integrator): the run starts afresh."""
    missing = set(_attrs(obj)) - set(saved)  # (saved extras are state the integrator creates on its first step)
    if missing:
        raise ValueError(f"{where}: the checkpoint lacks integrator state {sorted(missing)} "
                         "(written by another ASE version?)")
    for k, entry in saved.items():
        if "generator" in entry:
            getattr(obj, k).bit_generator.state = entry["generator"]
        elif "object" in entry:
            sub = getattr(obj, k)
            if type(sub).__name__ != entry["object"]:
                raise ValueError(f"{where}.{k}: {entry['object']} saved, {type(sub).__name__} here")
            _set_attrs(sub, entry["attrs"], f"{where}.{k}")
        else:
            setattr(obj, k, entry["value"])


def export_state(dyn: Any) -> dict[str, Any]:
    """The state of an ASE dynamics object as plain data (numpy arrays and JSON): the atoms'
    arrays (positions, momenta, numbers, ...), cell and pbc, and the integrator's own state."""
    atoms = dyn.atoms
    return {"integrator": type(dyn).__name__,
            "atoms": {"arrays": {k: v.copy() for k, v in atoms.arrays.items()},
                      "cell": atoms.cell.array.copy(), "pbc": atoms.pbc.copy()},
            "dynamics": _attrs(dyn)}


def restore_state(task: MDTask, state: dict[str, Any]):
    """Rebuild ``(atoms, dynamics)`` of ``task`` from :func:`export_state`'s data: the same numbers
    bit for bit, so a resumed run ends exactly as an uninterrupted one."""
    a = state["atoms"]
    arrays = dict(a["arrays"])
    atoms = Atoms(numbers=arrays.pop("numbers"), positions=arrays.pop("positions"), cell=a["cell"], pbc=a["pbc"])
    for k, v in arrays.items():
        atoms.set_array(k, v)
    dyn = make_dynamics(task, atoms)
    if type(dyn).__name__ != state["integrator"]:
        raise ValueError(f"a {state['integrator']} checkpoint, but this ASE integrates with {type(dyn).__name__}")
    _set_attrs(dyn, state["dynamics"], type(dyn).__name__)
    # the integrator's constructor may adjust the atoms (Melchionna removes the centre-of-mass
    # momentum): put back the saved arrays and cell, bit for bit
    atoms.set_cell(a["cell"])
    for k, v in a["arrays"].items():
        atoms.set_array(k, v)
    return atoms, dyn


class ASEEngine:
    """Reference engine: ASE integrators, one replica at a time, checkpointed."""

    name = "ase"

    def run(self, task: MDTask, model: Any, workdir: Path, progress: ProgressFn | None = None,
            limits: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run (or resume) ``task`` in ``workdir`` with ``model`` (a LoadedModel or an ASE
        calculator); return ``{"samples", "frames", "failure"}``.

        A blow-up stops the run early and is recorded in ``failure`` ({step, reason}); it is a
        result, not an exception.
        """
        from pto_checks.reference import tolerance

        limits = limits or tolerance("melting")
        calc = _calculator(model)
        rec = Recorder(task, workdir, self.name)
        resumed = rec.resume()
        if resumed:
            try:
                atoms, dyn = restore_state(task, rec.state)
            except Exception as exc:  # not this ASE's integrator state, or malformed: start afresh
                rec.discard(f"{rec.path}: integrator state not restorable ({type(exc).__name__}: {exc})")
                rec = Recorder(task, workdir, self.name)
                resumed = False
            else:
                atoms.calc = calc
        if not resumed:
            atoms = start_atoms(task, workdir)  # a cooling step: the hotter run's final frame
            atoms.calc = calc
            dyn = make_dynamics(task, atoms)
            rec.observe(atoms, 0, limits)

        def checkpoint() -> None:
            rec.checkpoint(export_state(dyn))

        while not rec.done:
            n = min(task.sample_every, task.steps - rec.step)
            try:
                dyn.run(n)
            except Exception as exc:  # e.g. ASE NPT refusing a sheared cell, a model crash
                rec.fail(rec.step, f"integrator/model raised {type(exc).__name__}: {exc}")
                break
            step = rec.step + n
            row = rec.observe(atoms, step, limits)
            if row is None:
                break
            if progress:
                progress(step, row, step >= task.steps)
            if step % task.checkpoint_every == 0 or step >= task.steps:
                checkpoint()
        checkpoint()
        return rec.result()

    def run_many(self, tasks: Sequence[MDTask], model: Any, workdirs: Sequence[Path],
                 progress: ProgressFn | None = None, limits: dict[str, Any] | None = None
                 ) -> list[dict[str, Any]]:
        """Run tasks one after the other (a batched engine advances them together)."""
        out = []
        for t, w in zip(tasks, workdirs, strict=True):
            prog = progress.relabel(t.label(), t.steps) if hasattr(progress, "relabel") else progress
            out.append(self.run(t, model, w, prog, limits))
        return out
