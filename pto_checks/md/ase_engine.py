"""The reference MD engine: ASE's integrators, one replica at a time, through the model's ASE
calculator; checkpointed as the pickled ASE dynamics object (positions, momenta, cell,
thermostat/barostat and random state)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from pto_checks.md.observe import ProgressFn, Recorder
from pto_checks.md.task import Ensemble, Integrator, MDTask, initial_atoms


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
        if rec.resume():
            dyn = rec.state
            atoms = dyn.atoms
            atoms.calc = calc
        else:
            atoms = initial_atoms(task)
            atoms.calc = calc
            dyn = make_dynamics(task, atoms)
            rec.observe(atoms, 0, limits)

        def checkpoint() -> None:
            atoms.calc = None
            # ASE < 3.24 keeps an open log file (os.devnull) on the dynamics: not picklable, not state
            held = {k: v for k, v in vars(dyn).items() if isinstance(v, io.IOBase) or k == "_lazy_cache"}
            for k in held:
                setattr(dyn, k, {} if k == "_lazy_cache" else None)
            try:
                rec.checkpoint(dyn)
            finally:
                atoms.calc = calc
                for k, v in held.items():
                    setattr(dyn, k, v)

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
