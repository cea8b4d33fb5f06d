"""The MD stage's single path: from the sweeps a session needs to cached, summarized rows.

:func:`md_sweep` plans the tasks (:func:`~pto_checks.md.task.sweep_tasks`), chooses the engine of
each (:func:`~pto_checks.md.engines.choose_engine`), claims the pending ones in the cache, hands
them in groups to the engine's ``run_many`` (:func:`~pto_checks.md.engines.run_group`), commits
each result and reads the rows back.  Each (model, task, engine) is one cache entry, computed at
most once per session (also under ``--rerun-md``).

An entry is keyed by the model, the task, the engine and every MD protocol field declared to
change a run (:func:`md_key`); it is validated when read (:func:`md_valid`), and its row is
recomputed from the stored ``samples.csv`` on every read (:func:`md_row`), so that
``production_fraction`` and the analysis need no new MD.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pto_checks import analysis, phase
from pto_checks.cache import Cache, Claim, stage_key
from pto_checks.executors import Executor, InProcess, make_job
from pto_checks.md.engines import choose_engine
from pto_checks.md.observe import Progress, SweepClock, checkpoint_problem, md_valid, write_outputs  # noqa: F401  (md_valid re-exported)
from pto_checks.md.task import EngineName, MDTask, sweep_tasks
from pto_checks.protocols import key_parts


@dataclass
class Sweep:
    """One temperature sweep of one model, as the checks read it.

    ``rows``: one dict per temperature (keys and units in :attr:`UNITS`; ``phase`` decided on
    reading by :func:`pto_checks.phase.decide_phase`, ``undecided`` included; ``cache_hit``,
    ``folder``, ``engine``); ``tc``: the Tc bracket of those phases
    (:func:`pto_checks.phase.sweep_tc`; a sequential sweep's bisection result); ``protocol``: the
    :class:`~pto_checks.protocols.Protocol` it ran under; ``engine``: the engine(s) that ran it.
    ``sweep["rows"]`` works too (the check files and verdicts were written against a dict).
    """

    ensemble: str
    integrator: str
    rows: list[dict[str, Any]]
    protocol: Any
    engine: str = "ase"
    tc: dict[str, Any] = field(default_factory=dict)
    #: rows of the cooling branch of a sequential sweep (hottest first; ``md.max_steps``)
    cooling_rows: list[dict[str, Any]] = field(default_factory=list)

    #: units of the row entries (the rest are dimensionless or text)
    UNITS: ClassVar[dict[str, str]] = {
        "T_K": "K", "T_measured": "K", "a": "Angstrom", "c": "Angstrom", "a_err": "Angstrom",
        "c_err": "Angstrom", "Pz": "C/m^2", "Pz_err": "C/m^2", "Px": "C/m^2", "Py": "C/m^2",
        "P_abs": "C/m^2", "P_abs_err": "C/m^2", "P_local_abs": "C/m^2", "P": "C/m^2",
    }

    def __post_init__(self) -> None:
        if not self.cooling_rows:
            self.cooling_rows = list(getattr(self.rows, "cooling", []))
        if not self.tc:
            self.tc = dict(getattr(self.rows, "tc", {}))
        if not self.tc:
            self.tc = phase.sweep_tc(self.rows, self.ensemble)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """``sweep.get(key)`` as on the dicts the verdicts were written against."""
        return getattr(self, key, default)

    @property
    def table(self) -> str:
        """The per-temperature table (T, a, c, c/a, |P|, Pz, phase) as text."""
        return analysis.format_table(self.rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (rows without their cache folders and tasks), as results.json stores it."""
        def plain(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in r.items() if k not in ("folder", "task")} for r in rs]

        out = {"rows": plain(self.rows), "tc": self.tc, "engine": self.engine, "units": dict(self.UNITS)}
        if self.cooling_rows:
            out["cooling_rows"] = plain(self.cooling_rows)
        return out


class SweepRows(list):
    """The rows :func:`md_sweep` returns (a list); a sequential sweep also carries ``cooling``
    (rows of the cooling branch) and ``tc`` (heating, cooling, bracket), which :class:`Sweep` reads."""

    cooling: list[dict[str, Any]]
    tc: dict[str, Any]


def md_key(model: Any, task: MDTask, engine: str | EngineName, protocol: Any) -> tuple[str, dict[str, Any]]:
    """(cache key, inputs) of one run: the model identity (weights fingerprint), the task, the engine,
    the stage version and every MD protocol field declared to change a run
    (:func:`~pto_checks.protocols.key_parts`; ``production_fraction`` is not one: :func:`md_row`
    recomputes the averages from the stored samples on every read).  The inputs are stored in the
    entry and compared when it is read."""
    return stage_key("md", model=model.identity(), task=task.to_dict(), engine=EngineName(engine).value,
                     protocol=key_parts(protocol.md, "md"))


def md_row(folder: Path, data: dict[str, Any], task: MDTask, protocol: Any) -> dict[str, Any]:
    """One run's summary row, averaged now from the stored ``samples.csv`` with this protocol's
    ``production_fraction`` (so that field needs no new MD and is not in the key)."""
    samples = analysis.read_samples(folder / "samples.csv") if data["n_samples_stored"] else []
    row = analysis.summarize_run(samples, data["failure"], task.temperature_K, protocol.md.production_fraction)
    row["task"] = task.to_dict()
    row["engine"] = data["engine"]
    return row


def _finish(folder: Path, res: dict[str, Any], task: MDTask, engine: EngineName, protocol: Any) -> dict[str, Any]:
    """Write one run's files; return its summary row (JSON, stored in the cache entry, with
    ``n_samples_stored`` for :func:`md_valid`; rows are recomputed on reading by :func:`md_row`)."""
    write_outputs(folder, res)
    row = analysis.summarize_run(res["samples"], res["failure"], task.temperature_K,
                                 protocol.md.production_fraction)
    row["task"] = task.to_dict()
    row["engine"] = engine.value
    row["n_samples_stored"] = len(res["samples"])
    return row


def _run_claimed(model: Any, protocol: Any, claimed: list[tuple[MDTask, EngineName, Claim]],
                 progress: Progress, limits: dict[str, Any], executor: Executor | None = None) -> None:
    """Run claimed tasks, one group per (engine, batch shape), through ``executor`` (default: in
    this process), and commit each result as its group finishes."""
    groups: dict[tuple, list[tuple[MDTask, EngineName, Claim]]] = {}
    for t, e, c in claimed:
        shape = (t.supercell, t.timestep_fs, t.steps, t.sample_every, t.trajectory_every, t.checkpoint_every)
        groups.setdefault((e, shape) if e is EngineName.BATCHED else (e, id(c)), []).append((t, e, c))
    for t, e, c in claimed:  # a checkpoint of another task or key, unreadable, or a legacy pickle: start afresh
        problem = checkpoint_problem(c.work, t, e.value, c.key)
        if problem is not None:
            c.discard_work(problem)
    members = list(groups.values())
    jobs = [make_job(engine, [t for t, _, _ in m], model, [c.work for _, _, c in m], limits)
            for (engine, _), m in groups.items()]
    for i, results in (executor or InProcess()).run_jobs(jobs, model, progress=progress):
        for (t, e, c), res in zip(members[i], results, strict=True):
            row = _finish(c.work, res, t, e, protocol)
            md_valid(c.work, row)  # a validator that would reject good output is found at once
            c.commit(row, {"model": model.identity()})


def md_sweep(model: Any, protocol: Any, cache: Cache, ensemble: str, integrator: str,
             engine: str | EngineName = "ase", progress: bool = True, write=None,
             together: Sequence[tuple[str, str]] = (), executor: Executor | None = None) -> list[dict[str, Any]]:
    """Run (or read from the cache) one temperature sweep; return the per-temperature rows, each
    with its phase (:func:`pto_checks.phase.classify_rows`, decided on reading), ``engine``,
    ``cache_hit`` (False when this call computed it) and ``folder``.

    ``engine`` is the ``--engine`` option (``ase``, ``batched`` or ``auto``), resolved per task.
    Tasks on the batched engine run as one batch together with the batched tasks of the sweeps
    named in ``together`` (``(ensemble, integrator)`` pairs the session will ask for); those land
    in the cache and are read from it when their own sweep is asked for.  A task that another
    process (an xdist worker) holds is passed over and read once that process has finished it.
    ``executor`` (:mod:`pto_checks.executors`) runs the groups of tasks (default: in this process,
    one after another); a parallel one (Dask) gets every pending task of the sweep at once.
    """
    from pto_checks.reference import load_reference

    tol = load_reference()["tolerances"]
    limits = tol["melting"]
    if protocol.md.sequential:  # md.max_steps: chunks until decided, Tc bisected, cooling branch
        from pto_checks.md.sequential import sequential_sweep

        say = Progress(model.name, 0, enabled=progress, write=write)
        heat, cool, tc = sequential_sweep(model, protocol, cache, ensemble, integrator, engine,
                                          say.write if progress else (lambda _line: None), executor)
        out = SweepRows(phase.classify_rows(heat, ensemble))
        out.cooling = phase.classify_rows(cool, ensemble)
        out.tc = tc
        return out
    plan = [(t, choose_engine(engine, model, t)) for t in sweep_tasks(protocol, ensemble, integrator)]
    computed: set[str] = set()
    parallel = executor is not None and executor.parallel
    batch = [(t, e) for t, e in plan if parallel or e is EngineName.BATCHED]
    clock = None if parallel or not plan else _clock(model, protocol, ensemble, plan, batch)
    prog = Progress(f"{model.name}", 0, enabled=progress, write=write, clock=clock)
    if progress and clock is not None:
        todo = [t for t, e in plan if not cache.looks_finished("md", md_key(model, t, e, protocol)[0])]
        if todo:  # said before the first step, so that a long sweep is never silent
            t0 = todo[0]
            prog.write(f"[pto-checks] {clock.label}: {len(todo)} of {len(plan)} run(s) to compute, {t0.steps} steps "
                       f"of {5 * t0.supercell**3} atoms each (protocol '{protocol.name}' on {clock.device}); "
                       "the cost estimate follows after the first seconds of MD")
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
                key, inputs = md_key(model, t, e, protocol)
                c = stack.enter_context(cache.claim("md", key, resumable=True, blocking=False,
                                                    validate=md_valid, inputs=inputs))
                if c is not None and not c.hit:
                    claimed.append((t, e, c))
            if clock is not None and not claimed:
                clock.skip(batch[0][0].steps)  # the whole batch is in the cache
            _run_claimed(model, protocol, claimed, prog, limits, executor)
            computed |= {c.folder.name for _, _, c in claimed}
    done: dict[int, tuple[dict[str, Any], Path, bool]] = {}
    pending = list(range(len(plan)))
    while pending:
        progressed = False
        for i in list(pending):
            out = _read_or_run(model, protocol, cache, *plan[i], prog, limits, blocking=False,
                               executor=executor)
            if out is not None:
                done[i] = out
                pending.remove(i)
                progressed = True
        if pending and not progressed:  # all busy elsewhere: wait for the first one
            i = pending.pop(0)
            done[i] = _read_or_run(model, protocol, cache, *plan[i], prog, limits, blocking=True,
                                   executor=executor)
    by_t: dict[float, list[dict[str, Any]]] = {}
    for i, (t, _) in enumerate(plan):
        row, folder, hit = done[i]
        hit = hit and folder.name not in computed
        by_t.setdefault(t.temperature_K, []).append(dict(row, cache_hit=hit, folder=str(folder)))
    # md.replicas: the runs of one temperature make one row (intervals from their spread)
    rows = [analysis.combine_replica_rows(rs) for rs in by_t.values()]
    return phase.classify_rows(rows, ensemble)


def _clock(model: Any, protocol: Any, ensemble: str, plan: list[tuple[MDTask, EngineName]],
           batch: list[tuple[MDTask, EngineName]]) -> SweepClock:
    """The sweep's clock: one run of ``steps`` per task on the ASE engine, one for the batch (all its
    replicas advance together); cache hits are taken off as they are found."""
    t0 = plan[0][0]
    units = sum(t.steps for t, e in plan if e is not EngineName.BATCHED) + (t0.steps if batch else 0)
    return SweepClock(f"{model.name} {ensemble.upper()}", protocol.name, getattr(model, "device", "cpu"), units,
                      len(plan), t0.steps, 5 * t0.supercell**3, reduced=protocol.reduced)


def _read_or_run(model: Any, protocol: Any, cache: Cache, task: MDTask, engine: EngineName, prog: Progress,
                 limits: dict[str, Any], blocking: bool, executor: Executor | None = None
                 ) -> tuple[dict[str, Any], Path, bool] | None:
    """One task: (row, folder, hit), computing it when missing; None when another process holds
    it and ``blocking`` is False."""
    key, inputs = md_key(model, task, engine, protocol)
    with cache.claim("md", key, resumable=True, blocking=blocking, validate=md_valid, inputs=inputs) as c:
        if c is None:
            return None
        if c.hit and prog.clock is not None:
            prog.clock.skip(task.steps)
        if not c.hit:
            _run_claimed(model, protocol, [(task, engine, c)], prog, limits, executor)
        return md_row(c.folder, c.data, task, protocol), c.folder, c.hit
