"""The MD stage's single path: from the sweeps a session needs to cached, summarized rows.

:func:`md_sweep` plans the tasks (:func:`~pto_checks.md.task.sweep_tasks`), chooses the engine of
each (:func:`~pto_checks.md.engines.choose_engine`), claims the pending ones in the cache, hands
them in groups to the engine's ``run_many`` (:func:`~pto_checks.md.engines.run_group`), commits
each result and reads the rows back.  Each (model, task, engine) is one cache entry, computed at
most once per session (also under ``--rerun-md``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pto_checks import analysis
from pto_checks.cache import Cache, Claim, cache_key
from pto_checks.md.engines import choose_engine, run_group
from pto_checks.md.observe import Progress, write_outputs
from pto_checks.md.task import EngineName, MDTask, sweep_tasks


@dataclass
class Sweep:
    """One temperature sweep of one model, as the checks read it.

    ``rows``: one dict per temperature (keys and units in :attr:`UNITS`; ``phase`` classified on
    reading; ``cache_hit``, ``folder``, ``engine``); ``tc``: the transition temperature estimate
    (:func:`pto_checks.analysis.transition_temperature`); ``protocol``: the
    :class:`~pto_checks.protocols.Protocol` it ran under; ``engine``: the engine(s) that ran it.
    ``sweep["rows"]`` works too (the check files and verdicts were written against a dict).
    """

    ensemble: str
    integrator: str
    rows: list[dict[str, Any]]
    protocol: Any
    engine: str = "ase"
    tc: dict[str, Any] = field(default_factory=dict)

    #: units of the row entries (the rest are dimensionless or text)
    UNITS: ClassVar[dict[str, str]] = {
        "T_K": "K", "T_measured": "K", "a": "Angstrom", "c": "Angstrom", "a_err": "Angstrom",
        "c_err": "Angstrom", "Pz": "C/m^2", "Pz_err": "C/m^2", "Px": "C/m^2", "Py": "C/m^2",
        "P_abs": "C/m^2", "P_abs_err": "C/m^2", "P_local_abs": "C/m^2", "P": "C/m^2",
    }

    def __post_init__(self) -> None:
        if not self.tc:
            self.tc = analysis.transition_temperature([r["T_K"] for r in self.rows],
                                                      [r["phase"] for r in self.rows])

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """``sweep.get("decide_with_intervals")`` as on the dicts the verdicts were written against."""
        return getattr(self, key, default)

    @property
    def table(self) -> str:
        """The per-temperature table (T, a, c, c/a, |P|, Pz, phase) as text."""
        return analysis.format_table(self.rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (rows without their cache folders and tasks), as results.json stores it."""
        rows = [{k: v for k, v in r.items() if k not in ("folder", "task")} for r in self.rows]
        return {"rows": rows, "tc": self.tc, "engine": self.engine, "units": dict(self.UNITS)}


def task_key(model: Any, task: MDTask, engine: str | EngineName) -> str:
    """Cache key of one run: model identity (weights fingerprint), task, engine, stage version."""
    return cache_key("md", model=model.identity(), task=task.to_dict(), engine=EngineName(engine).value)


def _finish(folder: Path, res: dict[str, Any], task: MDTask, engine: EngineName, protocol: Any) -> dict[str, Any]:
    """Write one run's files; return its summary row (JSON, stored in the cache entry)."""
    write_outputs(folder, res)
    row = analysis.summarize_run(res["samples"], res["failure"], task.temperature_K,
                                 protocol.md.production_fraction)
    row["task"] = task.to_dict()
    row["engine"] = engine.value
    return row


def _run_claimed(model: Any, protocol: Any, claimed: list[tuple[MDTask, EngineName, Claim]],
                 progress: Progress, limits: dict[str, Any]) -> None:
    """Run claimed tasks, one group per (engine, batch shape), and commit each result."""
    groups: dict[tuple, list[tuple[MDTask, EngineName, Claim]]] = {}
    for t, e, c in claimed:
        shape = (t.supercell, t.timestep_fs, t.steps, t.sample_every, t.trajectory_every, t.checkpoint_every)
        groups.setdefault((e, shape) if e is EngineName.BATCHED else (e, id(c)), []).append((t, e, c))
    for (engine, _), members in groups.items():
        results = run_group(engine, [t for t, _, _ in members], model, [c.work for _, _, c in members],
                            progress=progress, limits=limits)
        for (t, e, c), res in zip(members, results, strict=True):
            c.commit(_finish(c.work, res, t, e, protocol), {"model": model.identity()})


def md_sweep(model: Any, protocol: Any, cache: Cache, ensemble: str, integrator: str,
             engine: str | EngineName = "ase", progress: bool = True, write=None,
             together: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """Run (or read from the cache) one temperature sweep; return the per-temperature rows, each
    with its phase (classified on reading, from the thresholds in reference_data), ``engine``,
    ``cache_hit`` (False when this call computed it) and ``folder``.

    ``engine`` is the ``--engine`` option (``ase``, ``batched`` or ``auto``), resolved per task.
    Tasks on the batched engine run as one batch together with the batched tasks of the sweeps
    named in ``together`` (``(ensemble, integrator)`` pairs the session will ask for); those land
    in the cache and are read from it when their own sweep is asked for.  A task that another
    process (an xdist worker) holds is passed over and read once that process has finished it.
    """
    from pto_checks.reference import load_reference

    tol = load_reference()["tolerances"]
    limits = tol["melting"]
    plan = [(t, choose_engine(engine, model, t)) for t in sweep_tasks(protocol, ensemble, integrator)]
    prog = Progress(f"{model.name}", 0, enabled=progress, write=write)
    computed: set[str] = set()
    batch = [(t, e) for t, e in plan if e is EngineName.BATCHED]
    if batch:
        own = {t for t, _ in plan}
        for ens, integ in together:
            for t in sweep_tasks(protocol, ens, integ):
                e = choose_engine(engine, model, t)
                if e is EngineName.BATCHED and t not in own:
                    batch.append((t, e))
        with contextlib.ExitStack() as stack:
            claimed = []
            for t, e in batch:
                c = stack.enter_context(cache.claim("md", task_key(model, t, e), resumable=True, blocking=False))
                if c is not None and not c.hit:
                    claimed.append((t, e, c))
            _run_claimed(model, protocol, claimed, prog, limits)
            computed |= {c.folder.name for _, _, c in claimed}
    done: dict[int, tuple[dict[str, Any], Path, bool]] = {}
    pending = list(range(len(plan)))
    while pending:
        progressed = False
        for i in list(pending):
            out = _read_or_run(model, protocol, cache, *plan[i], prog, limits, blocking=False)
            if out is not None:
                done[i] = out
                pending.remove(i)
                progressed = True
        if pending and not progressed:  # all busy elsewhere: wait for the first one
            i = pending.pop(0)
            done[i] = _read_or_run(model, protocol, cache, *plan[i], prog, limits, blocking=True)
    rows = []
    for i, (t, _) in enumerate(plan):
        row, folder, hit = done[i]
        hit = hit and folder.name not in computed
        phase = analysis.classify_phase(row, t.ensemble.value, tol["phase"], tol["melting"])
        rows.append(dict(row, phase=phase, cache_hit=hit, folder=str(folder)))
    return rows


def _read_or_run(model: Any, protocol: Any, cache: Cache, task: MDTask, engine: EngineName, prog: Progress,
                 limits: dict[str, Any], blocking: bool) -> tuple[dict[str, Any], Path, bool] | None:
    """One task: (row, folder, hit), computing it when missing; None when another process holds
    it and ``blocking`` is False."""
    with cache.claim("md", task_key(model, task, engine), resumable=True, blocking=blocking) as c:
        if c is None:
            return None
        if c.hit:
            return c.data, c.folder, True
        _run_claimed(model, protocol, [(task, engine, c)], prog, limits)
        return c.data, c.folder, False
