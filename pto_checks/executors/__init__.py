"""Where the MD stage's unit of work runs: the executor seam of :func:`pto_checks.md.sweep.md_sweep`.

The unit of work is a :class:`GroupJob`: a group of MD tasks of one model on one engine, as
:func:`pto_checks.md.engines.run_group` takes it, described by plain data (the model's spec,
device and weights fingerprint, the tasks, their work folders in the cache), never by a loaded
model.  The sweep claims the tasks in the cache (the claim is what keeps a task from being
computed twice at once), hands the jobs to an executor and commits each result as it comes back.

* :class:`InProcess` (default): runs each job here, one after the other, with the model already
  loaded (today's behaviour, byte for byte).
* :class:`~pto_checks.executors.dask_executor.DaskExecutor` (``--executor dask``): a
  ``distributed`` client on a ``LocalCluster`` (``--workers N``, one GPU each where there are
  GPUs), on a running scheduler (``--dask-scheduler ADDRESS``), or on a batch system through
  dask-jobqueue (``--cluster slurm|pbs|lsf``, :mod:`pto_checks.executors.clusters`).  Workers
  load the model from its spec themselves and resume each task from its checkpoint in the cache.

Options (shared by the pytest plugin and ``pto-checks cluster-script``): :func:`add_executor_options`.
"""

from __future__ import annotations

import contextlib
import enum
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pto_checks.md.engines import run_group
from pto_checks.md.task import EngineName, MDTask


class ExecutorName(str, enum.Enum):
    """``--executor`` choices."""

    INPROCESS = "inprocess"
    DASK = "dask"


class ExecutorError(RuntimeError):
    """An executor cannot go on (scheduler gone, workers unreachable); the message names the fix.
    Finished tasks are committed to the cache and unfinished ones keep their checkpoints."""


@dataclass(frozen=True)
class GroupJob:
    """One unit of MD work as plain, picklable data: ``tasks`` of the model ``spec`` (a
    :class:`~pto_checks.models.ModelSpec`) on ``engine``, on ``device``, each into its work
    folder (``workdirs``, absolute paths in the shared cache, where its checkpoint lives).
    ``fingerprint``: the weights fingerprint the submitting process loaded (a worker that loads
    other weights refuses to run).  ``limits``: the blow-up limits (reference tolerances)."""

    engine: EngineName
    tasks: tuple[MDTask, ...]
    workdirs: tuple[str, ...]
    spec: Any
    device: str
    fingerprint: str
    limits: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        temps = ",".join(f"{t.temperature_K:g}" for t in self.tasks)
        kinds = sorted({f"{t.ensemble.value}/{t.integrator.value}" for t in self.tasks})
        return f"{self.spec.name} {self.engine.value} {'+'.join(kinds)} T={temps} K"


Completion = tuple[int, list[dict[str, Any]]]


class Executor(Protocol):
    """Runs :class:`GroupJob` s.  ``run_jobs`` yields ``(index into jobs, results)`` as each job
    finishes (results: one dict per task, as ``Engine.run_many`` returns them)."""

    name: str
    #: True when jobs run concurrently (then the sweep claims and submits all its tasks at once)
    parallel: bool

    def run_jobs(self, jobs: Sequence[GroupJob], model: Any, progress: Any = None) -> Iterator[Completion]: ...

    def close(self) -> None: ...


@contextlib.contextmanager
def hold_work_folders(workdirs: Sequence[str | Path], report_every_s: float = 30.0) -> Iterator[bool]:
    """Hold the run locks of work folders (``<folder>.run.lock``, ``filelock``) while computing
    into them; yields False when a folder is gone (its task was committed meanwhile).

    The cache claim of the submitting process keeps other processes off a task; this lock also
    keeps off a run that outlived its submitter (a Dask worker still busy after its scheduler or
    client went away): the next run waits for it and resumes from its last checkpoint."""
    import filelock

    with contextlib.ExitStack() as stack:
        for w in sorted(str(Path(d)) for d in workdirs):
            lock = filelock.FileLock(f"{w}.run.lock", is_singleton=False)
            waited = 0.0
            while True:
                try:
                    lock.acquire(timeout=report_every_s)
                    break
                except filelock.Timeout:
                    waited += report_every_s
                    _stderr(f"[pto-checks] waiting {waited:.0f} s for an earlier run of {w} to stop")
            stack.callback(lock.release)
        yield all(Path(w).is_dir() for w in workdirs)


def _stderr(line: str) -> None:
    sys.__stderr__.write(line + "\n")
    sys.__stderr__.flush()


class InProcess:
    """Run each job here, in order, with the already loaded ``model`` (the default)."""

    name = ExecutorName.INPROCESS.value
    parallel = False

    def run_jobs(self, jobs: Sequence[GroupJob], model: Any, progress: Any = None) -> Iterator[Completion]:
        for i, job in enumerate(jobs):
            with hold_work_folders(job.workdirs):
                results = run_group(job.engine, job.tasks, model, [Path(w) for w in job.workdirs],
                                    progress=progress, limits=job.limits)
            yield i, results

    def close(self) -> None:
        pass


def make_job(engine: EngineName, tasks: Sequence[MDTask], model: Any, workdirs: Sequence[Path],
             limits: dict[str, Any]) -> GroupJob:
    """The :class:`GroupJob` of ``tasks`` of ``model`` (a LoadedModel) into ``workdirs``."""
    return GroupJob(EngineName(engine), tuple(tasks), tuple(str(Path(w).resolve()) for w in workdirs),
                    getattr(model, "spec", None), str(getattr(model, "device", "cpu")),
                    getattr(model, "fingerprint", ""), dict(limits))


# --- options shared by the pytest plugin and the command line (as pytest-benchmark does) --------

def add_executor_options(addoption: Callable[..., Any]) -> None:
    """Add the executor and cluster options through ``addoption`` (``group.addoption`` of pytest
    or ``ArgumentParser.add_argument``)."""
    addoption("--executor", default=None, choices=[e.value for e in ExecutorName],
              help="where MD tasks run: inprocess (default: here, one after another) or dask "
                   "(a local cluster of --workers processes, a running --dask-scheduler, or --cluster "
                   "jobs; implied by --dask-scheduler and --cluster)")
    addoption("--workers", type=int, default=None, metavar="N",
              help="dask: local worker processes (default: one per GPU, else 2); one GPU each")
    addoption("--dask-scheduler", default=None, metavar="ADDRESS",
              help="dask: connect to this running scheduler (tcp://host:8786) instead of starting one")
    add_cluster_options(addoption)


def add_cluster_options(addoption: Callable[..., Any]) -> None:
    """The dask-jobqueue options (also those of ``pto-checks cluster-script``)."""
    addoption("--cluster", default=None, choices=["slurm", "pbs", "lsf"],
              help="dask: start workers as batch jobs through dask-jobqueue (needs the shared cache "
                   "folder on a filesystem the compute nodes see)")
    addoption("--cluster-file", default=None, metavar="TOML",
              help="dask: [cluster] section (kind, jobs, gpus_per_job, queue, walltime, cores, memory, "
                   "account, prologue, ...); command-line options override it")
    addoption("--jobs", type=int, default=None, metavar="N", help="cluster: batch jobs to keep running")
    addoption("--gpus-per-job", type=int, default=None, metavar="N",
              help="cluster: GPUs per job (one worker process per GPU; default 1, 0 for CPU jobs)")
    addoption("--queue", default=None, metavar="Q", help="cluster: partition / queue")
    addoption("--walltime", default=None, metavar="T", help="cluster: job walltime (e.g. 24:00:00)")
    addoption("--account", default=None, metavar="A", help="cluster: account / project to charge")
    addoption("--job-cores", type=int, default=None, metavar="N", help="cluster: CPU cores per job")
    addoption("--job-memory", default=None, metavar="MEM", help="cluster: memory per job (e.g. 64GB)")


def executor_settings(get: Callable[[str], Any]) -> dict[str, Any]:
    """The executor options as a dict (``get(dest)``: pytest's ``config.getoption`` or
    ``vars(args).get``)."""
    keys = ["executor", "workers", "dask_scheduler", "cluster", "cluster_file", "jobs", "gpus_per_job",
            "queue", "walltime", "account", "job_cores", "job_memory"]
    return {k: get(k) for k in keys}


def wants_dask(settings: dict[str, Any]) -> bool:
    """Whether the options ask for the Dask executor (``--executor dask``, or a scheduler address,
    a cluster kind or a cluster file without ``--executor``)."""
    ex = settings.get("executor")
    if ex == ExecutorName.INPROCESS.value:
        if settings.get("dask_scheduler") or settings.get("cluster"):
            raise ValueError("--executor inprocess contradicts --dask-scheduler/--cluster: drop one")
        return False
    return ex == ExecutorName.DASK.value or bool(settings.get("dask_scheduler") or settings.get("cluster")
                                                 or settings.get("cluster_file"))


class Lazy:
    """The executor the options ask for, started when the first job is submitted (a sweep read
    entirely from the cache starts no cluster)."""

    def __init__(self, settings: dict[str, Any], device: str = "cpu",
                 notify: Callable[[str], None] | None = None):
        self.settings, self.device, self.notify = settings, device, notify
        self.parallel = wants_dask(settings)
        self.name = ExecutorName.DASK.value if self.parallel else ExecutorName.INPROCESS.value
        self.started: Executor | None = None

    def run_jobs(self, jobs: Sequence[GroupJob], model: Any, progress: Any = None) -> Iterator[Completion]:
        if not jobs:
            return iter(())
        if self.started is None:
            self.started = make_executor(self.settings, self.device, self.notify)
        return self.started.run_jobs(jobs, model, progress)

    def close(self) -> None:
        if self.started is not None:
            self.started.close()
            self.started = None


def make_executor(settings: dict[str, Any], device: str = "cpu", notify: Callable[[str], None] | None = None
                  ) -> Executor:
    """The executor the options ask for (:class:`InProcess` unless they ask for Dask)."""
    if not wants_dask(settings):
        return InProcess()
    from pto_checks.executors.dask_executor import DaskExecutor

    return DaskExecutor.from_settings(settings, device=device, notify=notify)


__all__ = ["Executor", "ExecutorError", "ExecutorName", "GroupJob", "InProcess", "Lazy", "add_cluster_options",
           "add_executor_options", "hold_work_folders", "executor_settings", "make_executor", "make_job", "wants_dask"]
