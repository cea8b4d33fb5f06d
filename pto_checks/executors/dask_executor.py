"""The Dask executor: MD jobs as ``distributed`` tasks on local processes, a running scheduler, or
batch jobs (dask-jobqueue).

Workers load the model from its spec (:func:`run_job`, once per worker process and model) and
write into the task's work folder in the shared cache, so a task that a dead worker left behind
resumes from its checkpoint on the worker that gets it next.  The submitting process holds the
cache claims of every task it submitted until the result is committed, so no other process (an
xdist worker, a second run) computes the same task meanwhile; Dask runs each key at most once at a
time.  A worker that dies mid-task counts against the scheduler's ``allowed-failures`` (set to
:data:`ALLOWED_FAILURES` for clusters this process starts); past it the task errs.  When the
scheduler goes away, :class:`~pto_checks.executors.ExecutorError` says so and what to do: what
finished is committed, what did not keeps its checkpoint.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from asyncio import CancelledError
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pto_checks.executors import Completion, ExecutorError, GroupJob, hold_work_folders
from pto_checks.md.engines import run_group

#: retries of a task whose worker died under it (the scheduler's ``allowed-failures``)
ALLOWED_FAILURES = 5
#: how long to wait for a scheduler to answer when connecting
CONNECT_TIMEOUT_S = 30

_MODELS: dict[tuple[str, str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def worker_device(device: str) -> str:
    """The device a worker uses for ``device``: ``cuda`` becomes ``cuda:i`` for the i-th worker
    process of a job that sees several GPUs (dask-jobqueue names them ``<job>-<i>``); a worker
    started with its own ``CUDA_VISIBLE_DEVICES`` (local cluster) keeps ``cuda``."""
    if device != "cuda":
        return device
    try:
        from distributed import get_worker

        name = str(get_worker().name)
        import torch

        n = torch.cuda.device_count()
    except (ImportError, ValueError):
        return device
    tail = name.rsplit("-", 1)[-1]
    return f"cuda:{int(tail) % n}" if n > 1 and tail.isdigit() else device


def _model(job: GroupJob) -> Any:
    """The worker's model of ``job`` (loaded once per process), checked against the fingerprint of
    the weights the submitting process loaded."""
    from pto_checks.models import load_model

    device = worker_device(job.device)
    key = (job.spec.name, device, job.fingerprint)
    with _MODELS_LOCK:
        if key not in _MODELS:
            model = load_model(job.spec, device)
            if model.fingerprint != job.fingerprint:
                raise RuntimeError(
                    f"model {job.spec.name!r} on worker {socket.gethostname()} loads weights with fingerprint "
                    f"{model.fingerprint[:12]}, the submitting process {job.fingerprint[:12]}: give the workers "
                    "the same weights files and package versions")
            _MODELS[key] = model
        return _MODELS[key]


def run_job(job: GroupJob) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run one job on a worker: ``(results, info)``; ``info``: host, PID, and which tasks resumed
    from a checkpoint."""
    from pto_checks.md.observe import CHECKPOINT

    dirs = [Path(w) for w in job.workdirs]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise FileNotFoundError(
            f"worker on {socket.gethostname()} cannot see the work folder(s) {missing}: put the cache "
            "(--pto-cache) on a filesystem shared by the submitting machine and every worker")
    from pto_checks import threads

    threads.apply_in_worker()
    model = _model(job)
    with hold_work_folders(job.workdirs) as present:
        if not present:
            raise FileNotFoundError(f"the work folders of {job.label} were committed by another run meanwhile")
        resumed = [any(d.rglob(CHECKPOINT)) for d in dirs]
        results = run_group(job.engine, job.tasks, model, dirs, progress=None, limits=job.limits)
    return results, {"host": socket.gethostname(), "pid": os.getpid(), "resumed": resumed}


def gpu_env(index: int, gpus: Sequence[str]) -> dict[str, str]:
    """The environment of local worker ``index``: its own GPU (``CUDA_VISIBLE_DEVICES``), round
    robin over ``gpus``; nothing without GPUs."""
    return {"CUDA_VISIBLE_DEVICES": str(gpus[index % len(gpus)])} if gpus else {}


def visible_gpus() -> list[str]:
    """The GPUs this process may hand out (``CUDA_VISIBLE_DEVICES`` or all that torch sees)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


def local_cluster(n_workers: int, gpus: Sequence[str] = (), threads: int | None = None) -> Any:
    """A ``LocalCluster`` of ``n_workers`` process workers (one Dask thread each, behind nannies
    that restart a killed worker); with ``gpus``, worker i sees only GPU ``gpus[i % len(gpus)]``
    and has the resource ``GPU=1``.  ``threads``: each worker's torch/OpenMP threads (exported to
    its environment, :mod:`pto_checks.threads`; default: the Nanny's one)."""
    from distributed import LocalCluster

    from pto_checks import threads as thread_plan

    thread_env = {v: str(threads) for v in (*thread_plan.THREAD_VARS, thread_plan.MARKER)} if threads else {}

    class _Cluster(LocalCluster):
        def new_worker_spec(self):  # noqa: ANN202 (distributed's signature)
            spec = super().new_worker_spec()
            for name, s in spec.items():
                opts = dict(s["options"])
                opts["env"] = {**opts.get("env", {}), **thread_env, **gpu_env(int(name), gpus)}
                if gpus:
                    opts["resources"] = {"GPU": 1}
                s["options"] = opts
            return spec

    return _Cluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=40)


class DaskExecutor:
    """Run jobs as ``distributed`` tasks through ``client`` (owning ``cluster`` when it started
    one, closed with :meth:`close`)."""

    name = "dask"
    parallel = True

    def __init__(self, client: Any, cluster: Any = None, where: str = "",
                 notify: Callable[[str], None] | None = None):
        self.client, self.cluster, self.where = client, cluster, where or str(client.scheduler.address)
        self.notify = notify or (lambda line: None)
        self.gpu_resources = False

    @classmethod
    def from_settings(cls, s: dict[str, Any], device: str = "cpu",
                      notify: Callable[[str], None] | None = None) -> DaskExecutor:
        """Connect to ``--dask-scheduler``, or start a jobqueue cluster (``--cluster``/``--cluster-file``)
        or a ``LocalCluster`` (``--workers``), as the options ask."""
        import dask

        try:
            from distributed import Client
        except ImportError as exc:
            raise ExecutorError("--executor dask needs distributed: pip install 'pto-checks[cluster]'") from exc
        if s.get("dask_scheduler"):
            addr = s["dask_scheduler"]
            try:
                client = Client(addr, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise ExecutorError(
                    f"no Dask scheduler answers at {addr} ({type(exc).__name__}: {exc}): start one "
                    f"(`dask scheduler`, then `dask worker {addr}` per GPU) or drop --dask-scheduler") from None
            return cls(client, None, f"scheduler {addr}", notify)
        with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
            if s.get("cluster") or s.get("cluster_file"):
                from pto_checks.executors.clusters import ClusterSettings, make_cluster

                cs = ClusterSettings.from_settings(s)
                cluster = make_cluster(cs)
                cluster.scale(jobs=cs.jobs)
                ex = cls(Client(cluster), cluster, f"{cs.kind} cluster ({cs.jobs} jobs)", notify)
                ex.gpu_resources = cs.gpus_per_job > 0
                return ex
            gpus = visible_gpus() if str(device).startswith("cuda") else []
            n = s.get("workers") or (len(gpus) or 2)
            from pto_checks import threads

            plan = threads.applied()
            cluster = local_cluster(n, gpus, plan.threads if plan is not None else None)
            ex = cls(Client(cluster), cluster, f"local cluster ({n} workers)", notify)
            ex.gpu_resources = bool(gpus)
            return ex

    def run_jobs(self, jobs: Sequence[GroupJob], model: Any = None, progress: Any = None) -> Iterator[Completion]:
        """Submit every job, then yield ``(index, results)`` as each finishes."""
        from distributed import as_completed

        if not jobs:
            return
        resources = {"GPU": 1} if self.gpu_resources and str(jobs[0].device).startswith("cuda") else None
        index: dict[str, int] = {}
        futures = []
        try:
            for i, job in enumerate(jobs):
                fut = self.client.submit(run_job, job, key=f"pto-md-{job.spec.name}-{time.time_ns()}-{i}",
                                         pure=False, resources=resources, retries=0)
                index[fut.key] = i
                futures.append(fut)
            self.notify(f"[pto-checks] {len(jobs)} MD job(s) submitted to {self.where}")
            for fut in as_completed(futures):
                i = index[fut.key]
                try:
                    results, info = fut.result()
                except (Exception, CancelledError) as exc:  # a job that raised, or a lost scheduler
                    self._raise_if_gone(exc, Path(jobs[i].workdirs[0]).parent)
                    raise
                resumed = sum(info["resumed"])
                self.notify(f"[pto-checks] done on {info['host']} (PID {info['pid']}): {jobs[i].label}"
                            + (f" ({resumed} resumed from checkpoint)" if resumed else ""))
                yield i, results
        finally:
            if futures and self.client.status == "running":
                self.client.cancel([f for f in futures if not f.done()])

    def _raise_if_gone(self, exc: BaseException, md_dir: Path) -> None:
        from distributed.comm.core import CommClosedError

        gone = isinstance(exc, CommClosedError | OSError | TimeoutError) or self.client.status != "running"
        if gone or "scheduler" in str(exc).lower() and "lost" in str(exc).lower():
            raise ExecutorError(
                f"the Dask scheduler ({self.where}) went away during the MD sweep ({type(exc).__name__}: {exc}). "
                "Nothing is lost: finished tasks are committed to the cache, unfinished ones keep their "
                f"checkpoints ({md_dir}/*.partial). Restart the scheduler and its workers (or run with "
                "--executor inprocess) and run the same command again: it resumes.") from exc

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()
