"""The engines and the one function that chooses one per task.

:func:`choose_engine` is the only code that knows what each engine supports: ``ase`` runs every
ensemble and integrator; ``batched`` runs the integrators of
:data:`pto_checks.md.integrators.BATCHED` (NPT melchionna, NVT langevin), and a task it cannot run
goes to ``ase`` (so ``--engine batched --npt-integrator mtk`` runs MTK on the reference engine).
``auto`` picks ``batched`` on a GPU for a model whose family adapter has a device-side batched
interface, else ``ase``.
"""

from __future__ import annotations

from collections.abc import Sequence
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
        option = EngineName.BATCHED if on_gpu and has_native_interface(model) else EngineName.ASE
    return option if supports(option, task) else EngineName.ASE


def run_group(engine: str | EngineName, tasks: Sequence[MDTask], model: Any, workdirs: Sequence[Path],
              progress: ProgressFn | None = None, limits: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run one group of tasks on one engine into their work folders (the seam an executor, e.g.
    Dask, replaces: plain arguments, no cache and no pytest)."""
    return get_engine(engine).run_many(tasks, model, workdirs, progress=progress, limits=limits)
