"""Sequential MD: run each temperature in chunks until its phase is decided, then bracket Tc.

The rule (:class:`SequentialRule`, from ``md.steps`` and ``md.max_steps``):

* **Looks** at a fixed schedule of lengths: ``steps``, ``2 steps``, ``4 steps``, ... and
  ``max_steps`` (doubling; the last look at the cap).  After each look the temperature is
  decided (:func:`decide`) and, once decided, leaves the run (in the batched engine: the batch).
* **Level per look**: Bonferroni over the planned number of looks K: every look decides at
  alpha / K (``StatisticsSettings.z(looks=K)``), so the chance that any of the K looks makes a
  false decision is at most alpha, whatever the (strong, positive) correlation between looks of
  one growing run.  Why Bonferroni and not an alpha-spending boundary (O'Brien-Fleming,
  Lan-DeMets): spending functions need the joint law of the successive statistics (independent
  increments of a Brownian motion in information time), which an MD run's estimates only
  approximate (the error estimate itself, g and n_eff, changes from look to look and the
  equilibrated start moves); Bonferroni needs nothing and is conservative.  The doubling schedule
  keeps K = 1 + ceil(log2(max_steps / steps)) small (K = 4 for a cap of 8 x the minimum: z 2.50
  instead of 1.96 at 95 %), and the error of the mean halves in about two looks.
  The rows carry ``looks`` = K, so the verdicts decide them at the same corrected level.
* **What is decided** per temperature: its phase (:func:`decide`, the one function that knows
  which checks depend on a temperature: crystal or not, polar or not at the corrected level).
* **Tc**: after the grid, temperatures are added by bisection between the last polar and the
  first non-polar temperature until the bracket is at most ``md.tc_resolution_K`` or the added
  temperature stays undecided at the cap; then a cooling branch starts from the final frame of
  the hottest heating run and steps down the grid (each step from the previous step's final
  frame: its cache key names that parent's key), stops at the first polar temperature and is
  bisected the same way.  ``tc`` gives ``heating``, ``cooling`` (each ``tc``, ``uncertainty_K``,
  ``bracket_K``, ``status``) and ``bracket_K`` (heating).

Cache: a sequential run is keyed by its task at the minimum length plus the rule (``sequential``:
min, max, schedule, correction, level, the decision), never by the length it reached, so it is
never confused with a fixed-length run; the entry stores ``steps_reached`` and the looks used.
The key is made as :func:`pto_checks.md.sweep.md_key` makes a fixed run's (stage version, every MD
protocol field declared to change a run) and the entry is validated on reading (``md_valid``).
Resume: the chunks extend one checkpointed run (``checkpoint.npz``; each chunk is the same task
asked for a longer length, as :func:`pto_checks.md.engines.run_until` does), so an interrupted
sequential run picks up from its last checkpoint and ends as if never interrupted.  Chunks run
through the executor seam (:mod:`pto_checks.executors`), as fixed runs do.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pto_checks import analysis, threads
from pto_checks.cache import Cache, stage_key
from pto_checks.executors import Executor, InProcess, make_job
from pto_checks.md.engines import choose_engine
from pto_checks.md.observe import Progress, checkpoint_problem, md_valid, write_outputs
from pto_checks.md.task import START_STATE, EngineName, MDTask, sweep_tasks
from pto_checks.phase import Phase, decide_phase, tc_bracket

FINAL_STATE = "final_state.npz"


@dataclass(frozen=True)
class SequentialRule:
    """Looks at ``min_steps * 2^k`` (k = 0, 1, ...) and at ``max_steps``; Bonferroni over them."""

    min_steps: int
    max_steps: int
    confidence_level: float
    schedule: str = "doubling"
    correction: str = "bonferroni"
    decision: str = "phase"

    @property
    def looks(self) -> tuple[int, ...]:
        """The run lengths (steps) at which the data are looked at."""
        out, n = [], self.min_steps
        while n < self.max_steps:
            out.append(n)
            n *= 2
        return (*out, self.max_steps)

    @property
    def n_looks(self) -> int:
        return len(self.looks)

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), looks=list(self.looks))


def rule_for(protocol: Any) -> SequentialRule | None:
    """The rule of ``protocol`` (None for a fixed-length protocol)."""
    from pto_checks.decisions import statistics_settings

    p = protocol.md
    if not p.sequential:
        return None
    return SequentialRule(p.steps, p.max_steps, statistics_settings().confidence_level)


def decide(row: dict[str, Any], ensemble: str) -> tuple[str | None, str]:
    """The phase of one temperature at the level its ``looks`` ask for (None: undecided), and the
    text, by :func:`pto_checks.phase.decide_phase` (the rule the rows and verdicts read)."""
    d = decide_phase(row, ensemble)
    return (d.phase.value if d.phase.decided else None), d.text


def _polar(phase: str | None) -> bool:
    return Phase.of(phase).polar


def task_key(model: Any, task: MDTask, engine: EngineName, rule: SequentialRule, start_from: str | None,
             protocol: Any) -> tuple[str, dict[str, Any]]:
    """(cache key, inputs) of one sequential run: as :func:`pto_checks.md.sweep.md_key` (model
    identity, task, engine, stage version, the MD protocol fields that change a run) with the task
    at the minimum length, plus the rule and (a cooling step) the key of the run whose final frame
    it starts from."""
    from pto_checks.protocols import key_parts

    parts: dict[str, Any] = {"model": model.identity(), "task": replace(task, steps=rule.min_steps).to_dict(),
                             "engine": EngineName(engine).value, "protocol": key_parts(protocol.md, "md"),
                             "sequential": rule.to_dict()}
    if start_from:
        parts["start_from"] = start_from
    return stage_key("md", **parts)


@dataclass
class Run:
    """One temperature to run sequentially: its task, engine, branch and start."""

    task: MDTask
    engine: EngineName
    branch: str = "heating"
    start_from: str | None = None  #: key of the run whose final frame it starts from
    start_folder: Path | None = None  #: that run's cache folder
    key: str = ""
    row: dict[str, Any] | None = None
    folder: Path | None = None
    hit: bool = False


def _finish(work: Path, res: dict[str, Any], run: Run, rule: SequentialRule, steps: int,
            looks_used: int, phase: str | None, production_fraction: float) -> dict[str, Any]:
    write_outputs(work, res)
    lf = res.get("last_frame")
    if lf is not None:
        np.savez(work / FINAL_STATE, numbers=np.asarray(lf["numbers"]), positions=np.asarray(lf["positions"]),
                 cell=np.asarray(lf["cell"]))
    # the stored row is summarised from exactly the samples its last look decided on
    seen = [x for x in res["samples"] if x["step"] <= steps]
    row = analysis.summarize_run(seen, res["failure"], run.task.temperature_K, production_fraction)
    row["task"] = replace(run.task, steps=rule.max_steps).to_dict()
    row["engine"] = run.engine.value
    row["n_samples_stored"] = len(res["samples"])  # for md_valid
    row["looks"] = rule.n_looks
    row["branch"] = run.branch
    row["start_from"] = run.start_from
    row["steps_reached"] = steps
    row["sequential"] = {"rule": rule.to_dict(), "steps_reached": steps, "looks_used": looks_used,
                         "decided": phase is not None, "phase": phase}
    return row


def run_sequential(model: Any, protocol: Any, cache: Cache, runs: list[Run], rule: SequentialRule,
                   ensemble: str, write: Callable[[str], None], limits: dict[str, Any], label: str,
                   executor: Executor | None = None) -> None:
    """Run (or read) ``runs`` sequentially: chunks up to the next look for every undecided run,
    grouped per engine (a decided replica leaves the batch), each chunk a job of ``executor``
    (default: in this process); fills ``row``, ``folder``, ``hit``."""
    with contextlib.ExitStack() as stack:
        todo: list[tuple[Run, Any]] = []
        for r in runs:
            r.key, inputs = task_key(model, r.task, r.engine, rule, r.start_from, protocol)
            c = stack.enter_context(cache.claim("md", r.key, resumable=True, blocking=True, validate=md_valid,
                                                inputs=inputs))
            if c.hit:
                r.row, r.folder, r.hit = c.data, c.folder, True
                continue
            # a checkpoint of another task or key, unreadable, or a legacy pickle: start afresh
            problem = checkpoint_problem(c.work, r.task, r.engine.value, c.key)
            if problem is not None:
                c.discard_work(problem)
            if r.start_folder is not None and not (c.work / START_STATE).is_file():
                shutil.copyfile(r.start_folder / FINAL_STATE, c.work / START_STATE)
            todo.append((r, c))
        results: dict[int, tuple[dict[str, Any], int, int, str | None]] = {}
        open_ = list(range(len(todo)))
        for k, target in enumerate(rule.looks):
            if not open_:
                break
            temps = ", ".join(f"{todo[i][0].task.temperature_K:.0f} K" for i in open_)
            write(f"[pto-checks] {label} sequential chunk {k + 1}/{rule.n_looks} (to {target} steps); "
                  f"undecided: {temps}" + (f" ({threads.describe_current()})" if k == 0 else ""))
            by_engine: dict[EngineName, list[int]] = {}
            for i in open_:
                by_engine.setdefault(todo[i][0].engine, []).append(i)
            # each chunk: the task asked for the look's length, resumed from its checkpoint (run_until's
            # "N more steps"), as one job per engine through the executor seam
            groups = list(by_engine.items())
            jobs = [make_job(engine, [replace(todo[i][0].task, steps=int(target)) for i in idx], model,
                             [todo[i][1].work for i in idx], limits) for engine, idx in groups]
            # a line every PROGRESS_EVERY_S while a chunk runs (steps/s, ETA, T, c/a), and one per
            # temperature after each look: a chunk of a CPU protocol runs for tens of minutes
            progress = Progress(getattr(model, "name", ""), 0, write=write, every_s=PROGRESS_EVERY_S)  # + run label
            for j, res in (executor or InProcess()).run_jobs(jobs, model, progress=progress):
                idx = groups[j][1]
                for i, rs in zip(idx, res, strict=True):
                    # the look sees the samples up to its length: a run resumed from a checkpoint past
                    # it (interrupted mid-chunk) decides each look as the uninterrupted run did
                    seen = [x for x in rs["samples"] if x["step"] <= target]
                    row = analysis.summarize_run(seen, rs["failure"], todo[i][0].task.temperature_K,
                                                 protocol.md.production_fraction)
                    # as the stored row (_finish): the task names the cell, and with it the phase rule
                    # that applies (per-frame polar order from 27 cells on), so a look and its row agree
                    row["task"] = replace(todo[i][0].task, steps=rule.max_steps).to_dict()
                    row["looks"] = rule.n_looks
                    phase, text = decide(row, ensemble)
                    results[i] = (rs, target, k + 1, phase)
                    if phase is not None or rs["failure"] is not None:
                        open_.remove(i)
                    write(_look_line(label, todo[i][0].task.temperature_K, k + 1, rule.n_looks, target, phase,
                                     rs["failure"], text))
        for i, (r, c) in enumerate(todo):
            rs, steps, used, phase = results[i]
            row = _finish(c.work, rs, r, rule, steps, used, phase, protocol.md.production_fraction)
            md_valid(c.work, row)  # a validator that would reject good output is found at once
            c.commit(row, {"model": model.identity()})
            r.row, r.folder, r.hit = c.data, c.folder, False


#: seconds between progress lines while a sequential chunk runs
PROGRESS_EVERY_S = 60.0


def _look_line(label: str, temperature_K: float, look: int, looks: int, steps: int, phase: str | None,
               failure: Any, text: str) -> str:
    """One line after a look at one temperature: decided (and as what), failed, or undecided (why)."""
    head = f"[pto-checks] {label} {temperature_K:.0f} K, look {look}/{looks} at {steps} steps: "
    if failure is not None:
        reason = failure.get("reason", failure) if isinstance(failure, dict) else failure
        return head + f"stopped ({reason})"
    if phase is not None:
        return head + f"decided {phase}"
    more = "; extended to the next look" if look < looks else "; undecided at the cap"
    return head + f"undecided ({text})" + more


def _bracket(runs: list[Run], ensemble: str, descending: bool = False) -> dict[str, Any]:
    """Tc bracket of one branch (:func:`pto_checks.phase.tc_bracket`)."""
    srt = sorted(runs, key=lambda r: r.task.temperature_K)
    phases = [decide(r.row, ensemble)[0] for r in srt]
    br = tc_bracket([r.task.temperature_K for r in srt], phases).to_dict()
    if descending and br["status"] != "bracketed":  # cooling: first polar below the last cubic
        pol = [r.task.temperature_K for r, p in zip(srt, phases, strict=True) if _polar(p)]
        cub = [r.task.temperature_K for r, p in zip(srt, phases, strict=True) if p == "cubic"]
        if pol and cub and max(pol) < min(cub):
            lo, hi = max(pol), min(cub)
            br = {"low": lo, "high": hi, "tc": 0.5 * (lo + hi), "resolution": 0.5 * (hi - lo),
                  "status": "bracketed"}
    return br


def _bisect(model: Any, protocol: Any, cache: Cache, runs: list[Run], rule: SequentialRule, ensemble: str,
            write: Callable[[str], None], limits: dict[str, Any], label: str, branch: str,
            executor: Executor | None = None) -> dict[str, Any]:
    """Add temperatures at the middle of the bracket until it is at most ``md.tc_resolution_K``
    wide or the added temperature is undecided; returns the branch's Tc summary."""
    status = ""
    while True:
        br = _bracket(runs, ensemble, descending=branch == "cooling")
        if br["status"] != "bracketed" or br["high"] - br["low"] <= protocol.md.tc_resolution_K:
            break
        mid = 0.5 * (br["low"] + br["high"])
        by_t = {r.task.temperature_K: r for r in runs}
        if mid in by_t:  # already run (a grid temperature inside the bracket) and undecided at the cap
            status = f"bisection stopped: {mid:.0f} K undecided at the cap"
            break
        template = by_t[br["high"]]
        new = Run(replace(template.task, temperature_K=float(mid)), template.engine, branch)
        if branch == "cooling":  # from the final frame of the non-polar step above
            new.start_from, new.start_folder = template.key, template.folder
        run_sequential(model, protocol, cache, [new], rule, ensemble, write, limits, f"{label} {branch}", executor)
        runs.append(new)
        if decide(new.row, ensemble)[0] is None:
            status = f"bisection stopped: {mid:.0f} K undecided at the cap"
            break
    tc = br["tc"]
    return {"tc": tc, "uncertainty_K": br["resolution"], "bracket_K": [br["low"], br["high"]],
            "status": status or br["status"]}


def sequential_sweep(model: Any, protocol: Any, cache: Cache, ensemble: str, integrator: str,
                     engine: str | EngineName, write: Callable[[str], None], executor: Executor | None = None
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The sequential protocol for one sweep: (heating rows incl. bisection temperatures, sorted by
    T; cooling rows, hottest first; tc).  Rows as :func:`pto_checks.md.sweep.md_sweep` returns them
    (``folder``, ``cache_hit``; ``phase`` is added by the caller) plus ``branch``,
    ``steps_reached`` and ``sequential``."""
    from pto_checks.reference import load_reference

    rule = rule_for(protocol)
    assert rule is not None
    limits = load_reference()["tolerances"]["melting"]
    label = f"{model.name} {ensemble}/{integrator}"
    heating = [Run(t, choose_engine(engine, model, t)) for t in sweep_tasks(protocol, ensemble, integrator)]
    run_sequential(model, protocol, cache, heating, rule, ensemble, write, limits, label, executor)
    tc_heat = _bisect(model, protocol, cache, heating, rule, ensemble, write, limits, label, "heating", executor)
    cooling: list[Run] = []
    tc_cool: dict[str, Any] = {"tc": None, "uncertainty_K": None, "bracket_K": [None, None], "status": "not run"}
    if protocol.md.cooling and len(heating) > 1:
        hot = max(heating, key=lambda r: r.task.temperature_K)
        parent = hot
        for t in sorted({r.task.temperature_K for r in heating if r.task.temperature_K < hot.task.temperature_K},
                        reverse=True):
            if parent.row.get("failure"):
                break
            step = Run(replace(hot.task, temperature_K=float(t)), hot.engine, "cooling", parent.key, parent.folder)
            run_sequential(model, protocol, cache, [step], rule, ensemble, write, limits, f"{label} cooling",
                           executor)
            cooling.append(step)
            if _polar(decide(step.row, ensemble)[0]):
                break
            parent = step
        if cooling:
            branch = [hot, *cooling]
            tc_cool = _bisect(model, protocol, cache, branch, rule, ensemble, write, limits, label, "cooling",
                              executor)
            cooling = branch[1:]
    both = tc_heat["tc"] is not None and tc_cool["tc"] is not None
    hyst = (tc_heat["tc"] - tc_cool["tc"]) if both else None
    hyst_err = math.hypot(tc_heat["uncertainty_K"], tc_cool["uncertainty_K"]) if both else None
    tc = {"tc": tc_heat["tc"], "resolution": tc_heat["uncertainty_K"],
          "method": ("bisection between the last polar and the first cubic temperature on heating, each decided "
                     f"at the {rule.confidence_level:.0%} level (Bonferroni over {rule.n_looks} looks)"),
          "heating": tc_heat, "cooling": tc_cool, "bracket_K": tc_heat["bracket_K"], "hysteresis_K": hyst,
          "hysteresis_uncertainty_K": hyst_err,
          "sequential": rule.to_dict()}

    def rows(rs: list[Run]) -> list[dict[str, Any]]:
        return [dict(r.row, cache_hit=r.hit, folder=str(r.folder)) for r in rs]

    heat_rows = sorted(rows(heating), key=lambda r: r["T_K"])
    cool_rows = sorted(rows([r for r in cooling if r.branch == "cooling"]), key=lambda r: -r["T_K"])
    return heat_rows, cool_rows, tc


def steps_used(rows: list[dict[str, Any]]) -> int:
    """Total MD steps of a sweep's rows (``steps_reached``, or the task's steps for fixed runs)."""
    return int(sum(r.get("steps_reached", r.get("task", {}).get("steps", 0)) for r in rows
                   if not math.isnan(r.get("T_K", math.nan))))
