"""The engines and the one function that chooses one per task.

:func:`choose_engine` is the only code that knows what each engine supports: ``ase`` runs every
ensemble and integrator; ``batched`` runs the integrators of
:data:`pto_checks.md.integrators.BATCHED` (NPT melchionna, NVT langevin), and a task it cannot run
goes to ``ase`` (so ``--engine batched --npt-integrator mtk`` runs MTK on the reference engine).
``auto`` picks ``batched`` for a model whose family adapter has a device-side batched interface
on a GPU, and on a CPU where the CPU engine table (:mod:`pto_checks.md.cpu_table`, measured by
``benchmarks/cpu_engines.py``) shows it faster than ``ase`` for that family and cell size and one
replica fits the memory left (:mod:`pto_checks.memory`: MemAvailable or the cgroup limit); else
``ase``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from pto_checks.md.observe import ProgressFn
from pto_checks.md.task import EngineName, Ensemble, Integrator, MDTask

#: what the batched engine integrates (kept here without importing torch)
BATCHED_SWEEPS: frozenset[tuple[Ensemble, Integrator]] = frozenset(
    {(Ensemble.NPT, Integrator.MELCHIONNA), (Ensemble.NVT, Integrator.LANGEVIN)})


class Engine(Protocol):
    """What the MD stage needs from an engine.  ``model``: a LoadedModel."""

    name: str

    def run(self, task: MDTask, model: Any, workdir: Path, progress: ProgressFn | None = None,
            limits: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def run_many(self, tasks: Sequence[MDTask], model: Any, workdirs: Sequence[Path],
                 progress: ProgressFn | None = None, limits: dict[str, Any] | None = None
                 ) -> list[dict[str, Any]]: ...


def get_engine(name: str | EngineName) -> Engine:
    """The engine called ``name`` (``ase`` or ``batched``)."""
    try:
        name = EngineName(name)
    except ValueError:
        raise ValueError(f"unknown MD engine {name!r}; known: ase, batched") from None
    if name is EngineName.ASE:
        from pto_checks.md.ase_engine import ASEEngine

        return ASEEngine()
    if name is EngineName.BATCHED:
        from pto_checks.md.batched_engine import BatchedEngine

        return BatchedEngine()
    raise ValueError("'auto' is not an engine: choose one per task with choose_engine()")


def supports(engine: EngineName, task: MDTask) -> bool:
    """Whether ``engine`` can run ``task``."""
    return engine is EngineName.ASE or task.sweep in BATCHED_SWEEPS


def choose_engine(option: str | EngineName, model: Any, task: MDTask) -> EngineName:
    """The engine that runs ``task`` of ``model`` (a LoadedModel) under ``--engine option``."""
    option = EngineName(option)
    if option is EngineName.AUTO:
        from pto_checks.models.batched import has_native_interface

        on_gpu = str(getattr(model, "device", "cpu")).startswith("cuda")
        native = has_native_interface(model)
        option = EngineName.BATCHED if native and (on_gpu or cpu_prefers_batched(model, task)) else EngineName.ASE
    return option if supports(option, task) else EngineName.ASE


def cpu_prefers_batched(model: Any, task: MDTask) -> bool:
    """On a CPU: the batched engine was measured faster for the model's family at this cell size
    (:func:`pto_checks.md.cpu_table.batched_faster`) and one replica fits the memory left."""
    from pto_checks import memory
    from pto_checks.md import cpu_table

    family = getattr(getattr(model, "spec", None), "family", "")
    n_atoms = 5 * task.supercell**3
    if not cpu_table.batched_faster(family, n_atoms):
        return False
    available, _ = memory.available_bytes()
    return available is None or cpu_table.replica_mb(family, n_atoms) * 2**20 < available


def run_group(engine: str | EngineName, tasks: Sequence[MDTask], model: Any, workdirs: Sequence[Path],
              progress: ProgressFn | None = None, limits: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run one group of tasks on one engine into their work folders (the seam an executor, e.g.
    Dask, replaces: plain arguments, no cache and no pytest)."""
    return get_engine(engine).run_many(tasks, model, workdirs, progress=progress, limits=limits)


def run_until(engine: str | EngineName, tasks: Sequence[MDTask], model: Any, workdirs: Sequence[Path],
              until_steps: Sequence[int], progress: ProgressFn | None = None,
              limits: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Continue each task from the checkpoint in its work folder (or start it) until step
    ``until_steps[i]``: the "N more steps" of sequential MD.  Both engines resume exactly (state,
    thermostat and random generator from the checkpoint; the step count and seeds do not depend
    on the requested length), so a run extended in chunks equals one asked for the full length
    from the start.  Tasks of one call that reach the same step run as one batch on ``batched``."""
    extended = [replace(t, steps=int(n)) for t, n in zip(tasks, until_steps, strict=True)]
    out: list[dict[str, Any]] = [{} for _ in extended]
    groups: dict[int, list[int]] = {}
    for i, t in enumerate(extended):
        groups.setdefault(t.steps, []).append(i)
    for idx in groups.values():
        res = run_group(engine, [extended[i] for i in idx], model, [workdirs[i] for i in idx],
                        progress=progress, limits=limits)
        for i, r in zip(idx, res, strict=True):
            out[i] = r
    return out
