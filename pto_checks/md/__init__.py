"""The MD stage: tasks, engines and the sweep that runs them.

* :mod:`.task`: :class:`MDTask` (one temperature of one sweep) and the enums it names
  (:class:`Ensemble`, :class:`Integrator`, :class:`EngineName`); :func:`sweep_tasks`.
* :mod:`.observe`: what a frame measures, blow-up detection, progress, and :class:`Recorder`,
  the one writer of a run's samples, frames and checkpoint (shared by both engines).
* :mod:`.ase_engine`: :class:`ASEEngine`, the reference (ASE integrators, one replica at a time).
* :mod:`.integrators`, :mod:`.batched_engine`: the batched engine (torch; imported on demand).
* :mod:`.engines`: the engine protocol, :func:`choose_engine` (what each engine supports) and
  :func:`run_group` (run one group of tasks: the executor seam).
* :mod:`.sweep`: :func:`md_sweep`, the single path from a sweep to cached rows.

Import order (no cycles): task <- observe <- ase_engine; task <- integrators <- batched_engine;
engines -> (ase_engine, batched_engine lazily); sweep -> engines, cache, analysis.
Units: fs, K, Angstrom, eV, C/m^2.
"""

from __future__ import annotations

from typing import Any

from pto_checks.md.ase_engine import ASEEngine, make_dynamics
from pto_checks.md.engines import Engine, choose_engine, get_engine, run_group, supports
from pto_checks.md.observe import Progress, Recorder, blowup, sample
from pto_checks.md.task import EngineName, Ensemble, Integrator, MDTask, initial_atoms, sweep_tasks

__all__ = ["ASEEngine", "BatchedEngine", "Engine", "EngineName", "Ensemble", "Integrator", "MDTask",
           "Progress", "Recorder", "blowup", "choose_engine", "get_engine", "initial_atoms", "make_dynamics",
           "run_group", "sample", "supports", "sweep_tasks"]


def __getattr__(name: str) -> Any:  # the batched engine needs torch: import it only when asked
    if name == "BatchedEngine":
        from pto_checks.md.batched_engine import BatchedEngine

        return BatchedEngine
    raise AttributeError(name)
