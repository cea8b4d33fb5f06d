"""Batch-system clusters through dask-jobqueue: one class mapping (Slurm, PBS, LSF), one settings
type (:class:`ClusterSettings`, from the command line and/or a ``[cluster]`` TOML section).

A job holds ``gpus_per_job`` worker processes (one per GPU; one process on a CPU job), each with
the worker resource ``GPU=1`` and one thread (an MD task keeps its device busy).  The job script
is what :func:`job_script` prints (``pto-checks cluster-script``): check it before submitting.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

#: ``--cluster`` kind -> dask-jobqueue class name
CLUSTER_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "lsf": "LSFCluster"}


@dataclass(frozen=True)
class ClusterSettings:
    """What the jobs look like.  ``walltime``: as the batch system writes it (``HH:MM:SS``);
    ``memory``: per job (``"64GB"``); ``prologue``: shell lines run before the worker starts
    (``module load ...``, ``source .venv/bin/activate``); ``directives``: extra scheduler lines
    (without the ``#SBATCH``/``#PBS``/``#BSUB`` prefix); ``python``: the interpreter on the nodes
    (default: this one, so the nodes must see this environment)."""

    kind: str = "slurm"
    jobs: int = 1
    gpus_per_job: int = 1
    queue: str | None = None
    walltime: str = "24:00:00"
    account: str | None = None
    cores: int | None = None
    memory: str | None = None
    prologue: tuple[str, ...] = ()
    directives: tuple[str, ...] = ()
    python: str | None = None
    log_directory: str | None = None
    local_directory: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  #: passed to the dask-jobqueue class as is

    def __post_init__(self) -> None:
        if self.kind not in CLUSTER_CLASSES:
            raise ValueError(f"cluster kind {self.kind!r}: choose one of {', '.join(CLUSTER_CLASSES)}")
        if self.jobs < 1 or self.gpus_per_job < 0:
            raise ValueError("cluster: jobs must be >= 1 and gpus_per_job >= 0")

    @property
    def processes(self) -> int:
        """Worker processes per job: one per GPU (one on a CPU job)."""
        return max(1, self.gpus_per_job)

    @classmethod
    def from_toml(cls, path: str | Path) -> ClusterSettings:
        """The ``[cluster]`` section of a TOML file (keys: the field names)."""
        from pto_checks.reference import tomllib

        data = tomllib.loads(Path(path).read_text())
        if "cluster" not in data:
            raise ValueError(f"{path}: no [cluster] section")
        sec = dict(data["cluster"])
        known = {f.name for f in fields(cls)}
        unknown = set(sec) - known
        if unknown:
            raise ValueError(f"{path} [cluster]: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        for k in ("prologue", "directives"):
            if k in sec:
                sec[k] = tuple(sec[k])
        return cls(**sec)

    @classmethod
    def from_settings(cls, s: dict[str, Any]) -> ClusterSettings:
        """From the executor options (:func:`pto_checks.executors.executor_settings`): the file's
        ``[cluster]`` section, overridden by the options given on the command line."""
        base = cls.from_toml(s["cluster_file"]) if s.get("cluster_file") else cls(kind=s.get("cluster") or "slurm")
        over = {"kind": s.get("cluster"), "jobs": s.get("jobs"), "gpus_per_job": s.get("gpus_per_job"),
                "queue": s.get("queue"), "walltime": s.get("walltime"), "account": s.get("account"),
                "cores": s.get("job_cores"), "memory": s.get("job_memory")}
        return replace(base, **{k: v for k, v in over.items() if v is not None})

    def gpu_directives(self) -> list[str]:
        """The scheduler lines that ask for the GPUs of one job (PBS: in :meth:`pbs_resource_spec`)."""
        n = self.gpus_per_job
        if n == 0 or self.kind == "pbs":
            return []
        return {"slurm": [f"--gres=gpu:{n}"], "lsf": [f'-gpu "num={n}"']}[self.kind]

    @property
    def job_memory(self) -> str:
        return self.memory or f"{16 * self.processes}GB"

    def pbs_resource_spec(self) -> str:
        """PBS Pro's ``-l select=`` line: cores, GPUs and memory of one job."""
        spec = f"select=1:ncpus={self.cores or self.processes}"
        if self.gpus_per_job:
            spec += f":ngpus={self.gpus_per_job}"
        return spec + f":mem={self.job_memory}"

    def class_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the dask-jobqueue class.  Dask sees ``processes`` cores (one thread
        per worker: one MD task at a time on each GPU); ``cores`` (``--job-cores``) is what the job
        asks the batch system for (threads for the model's CPU side)."""
        import sys

        procs = self.processes
        kw: dict[str, Any] = {
            "cores": procs,
            "processes": procs,
            "memory": self.job_memory,
            "walltime": lsf_walltime(self.walltime) if self.kind == "lsf" else self.walltime,
            "job_extra_directives": [*self.gpu_directives(), *self.directives],
            "job_script_prologue": list(self.prologue),
            "worker_extra_args": ["--resources", "GPU=1"] if self.gpus_per_job else [],
            "python": self.python or sys.executable,
        }
        if self.cores:
            kw[{"slurm": "job_cpu", "lsf": "ncpus", "pbs": "resource_spec"}[self.kind]] = (
                self.cores if self.kind != "pbs" else self.pbs_resource_spec())
        if self.kind == "pbs":
            kw["resource_spec"] = self.pbs_resource_spec()
        if self.queue:
            kw["queue"] = self.queue
        if self.account:
            kw["account"] = self.account
        if self.log_directory:
            kw["log_directory"] = self.log_directory
        if self.local_directory:
            kw["local_directory"] = self.local_directory
        kw.update(self.options)
        return kw


def lsf_walltime(walltime: str) -> str:
    """LSF's ``-W [hours:]minutes`` from ``HH:MM:SS`` (seconds rounded up to a minute)."""
    parts = [int(p) for p in walltime.split(":")]
    if len(parts) != 3:
        return walltime
    h, m, sec = parts
    m += 1 if sec else 0
    return f"{h + m // 60:02d}:{m % 60:02d}"


def cluster_class(kind: str) -> type:
    """The dask-jobqueue class of ``kind`` (slurm, pbs, lsf); a clear error when it is missing."""
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ImportError("--cluster needs dask-jobqueue: pip install 'pto-checks[cluster]'") from exc
    return getattr(dask_jobqueue, CLUSTER_CLASSES[kind])


def make_cluster(settings: ClusterSettings, **extra: Any) -> Any:
    """A dask-jobqueue cluster for ``settings`` (its scheduler runs here; no job is submitted
    until ``scale``)."""
    return cluster_class(settings.kind)(**{**settings.class_kwargs(), **extra})


def job_script(settings: ClusterSettings) -> str:
    """The job script the cluster would submit (nothing is submitted)."""
    cluster = make_cluster(settings, scheduler_options={"dashboard_address": None})
    try:
        return cluster.job_script()
    finally:
        cluster.close()
