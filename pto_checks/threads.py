"""How many threads torch, OpenMP, MKL and OpenBLAS use in each process of a run.

A pytest run of the checks may be several processes computing at once on one host (pytest-xdist
workers, the workers of a local Dask cluster), each with its own torch thread pool.  torch's
default, one OpenMP thread per core in every process, oversubscribes the cores; and OpenMP
threads that wait on a descheduled sibling at every barrier turn a busy core into a 5-15x
slowdown of a small-cell MD step (measured in ``docs/drafts/issue-19.md``).  So each process
takes its share of the cores it may use:

    threads = max(1, floor((usable cores - cores busy with other work) / processes))

* usable cores: the process's CPU affinity (``os.sched_getaffinity``), capped by the cgroup CPU
  quota (``cpu.max`` of cgroup v2, ``cpu.cfs_quota_us / cpu.cfs_period_us`` of v1), the
  limits a container or batch job sets;
* cores busy with other work: the 1-minute load average at the start, scaled from the host's
  cores to the usable ones (a container sees its host's load) and rounded to whole cores;
* processes: the xdist workers times the Dask workers started on this host.

``--threads N`` overrides the rule; so does an ``OMP_NUM_THREADS`` the user set (one that this
module exported for its child processes does not count as the user's: ``PTO_CHECKS_THREADS``
marks it).  :func:`apply` exports the choice to the environment (read by OpenMP, MKL and
OpenBLAS when they load, so also by child processes), sets torch's intra-op threads when torch is
already imported, and limits the BLAS/OpenMP libraries already loaded (``threadpoolctl``).  With
more than one thread it sets ``OMP_WAIT_POLICY=PASSIVE`` (unless set): waiting threads sleep
instead of spinning, so load that arrives later costs less.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

#: the variables that set the thread pools of OpenMP, MKL, OpenBLAS, BLIS, numexpr and Accelerate
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
#: set together with the thread variables by :func:`apply`: marks them as the harness's choice
MARKER = "PTO_CHECKS_THREADS"


class ThreadSource(str, Enum):
    """Where the thread count came from."""

    OPTION = "--threads"
    ENVIRONMENT = "OMP_NUM_THREADS"
    AUTO = "auto"


@dataclass(frozen=True)
class ThreadPlan:
    """The threads of one process (``threads``) and why: ``cores`` usable (affinity and cgroup
    quota), ``busy`` of them taken by other work (cores, from the load average), ``processes``
    sharing them (xdist workers x Dask workers on the host), ``source``."""

    threads: int
    source: ThreadSource
    cores: float
    busy: float = 0.0
    processes: int = 1

    def describe(self) -> str:
        """One line for the start line of a run, e.g. ``1 thread (auto: 2 cores usable, 1 busy with
        other work, 1 process)``."""
        n = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        if self.source is ThreadSource.OPTION:
            return f"{n} (--threads)"
        if self.source is ThreadSource.ENVIRONMENT:
            return f"{n} (OMP_NUM_THREADS)"
        return (f"{n} (auto: {self.cores:g} cores usable, {self.busy:g} busy with other work, "
                f"{self.processes} process{'es' if self.processes != 1 else ''}; --threads N overrides)")


def affinity_cores() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where the
    platform has no affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cgroup_paths(controller: str, self_cgroup: Path = Path("/proc/self/cgroup")) -> tuple[str, str]:
    """This process's cgroup path (relative, no leading slash) in the v2 hierarchy and in the v1
    hierarchy of ``controller`` ("" where absent or unreadable)."""
    rel_v2, rel_v1 = "", ""
    try:
        for line in self_cgroup.read_text().splitlines():
            hid, controllers, path = (line.split(":", 2) + ["", ""])[:3]
            if hid == "0" and controllers == "":
                rel_v2 = path.strip("/")
            elif controller in controllers.split(","):
                rel_v1 = path.strip("/")
    except OSError:
        pass
    return rel_v2, rel_v1


def cgroup_parents(base: Path, rel: str) -> list[Path]:
    """``base/rel`` and each of its parents up to ``base`` (the tightest limit can sit on any)."""
    parts = [p for p in rel.split("/") if p]
    return [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")
                     ) -> float | None:
    """The CPU quota of this process's cgroup in cores (e.g. 1.5), or None without a quota.

    cgroup v2: ``cpu.max`` (``"max 100000"`` or ``"QUOTA PERIOD"``); v1: ``cpu.cfs_quota_us``
    (-1: none) over ``cpu.cfs_period_us``.  Looked up at the cgroup root (a container's own
    namespace) and at the process's cgroup path and its parents; the smallest quota wins."""
    rel_v2, rel_v1 = cgroup_paths("cpu", self_cgroup)
    quotas: list[float] = []
    for d in cgroup_parents(root, rel_v2):
        q = _read_v2(d / "cpu.max")
        if q is not None:
            quotas.append(q)
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for d in cgroup_parents(root / name, rel_v1):
            q = _read_v1(d / "cpu.cfs_quota_us", d / "cpu.cfs_period_us")
            if q is not None:
                quotas.append(q)
    return min(quotas) if quotas else None


def _read_v2(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        q, p = float(quota), float(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _read_v1(quota_path: Path, period_path: Path) -> float | None:
    try:
        q, p = float(quota_path.read_text()), float(period_path.read_text())
    except (OSError, ValueError):
        return None
    return q / p if q > 0 and p > 0 else None


def usable_cores(affinity: int | None = None, quota: float | None = None) -> float:
    """The cores this process may use: its affinity, capped by the cgroup quota (at least 1)."""
    cores = float(affinity if affinity is not None else affinity_cores())
    if quota is not None:
        cores = min(cores, quota)
    return max(1.0, cores)


def busy_cores(cores: float, load_1min: float | None, host_cpus: int | None) -> float:
    """Cores of ``cores`` taken by other work, from the host's 1-minute load average over its
    ``host_cpus`` (whole cores, at most ``cores``; 0 when the load is unknown)."""
    if load_1min is None or not host_cpus or not math.isfinite(load_1min):
        return 0.0
    share = min(1.0, max(0.0, load_1min) / host_cpus)
    return float(min(cores, round(share * cores)))


def plan(option: int | None = None, env: Mapping[str, str] | None = None, *, affinity: int | None = None,
         quota: float | None = None, load_1min: float | None = None, host_cpus: int | None = None,
         xdist_workers: int = 1, dask_workers: int = 1) -> ThreadPlan:
    """The thread plan of one process (pure: every input is an argument).

    ``option``: ``--threads``; ``env``: the environment (a user's ``OMP_NUM_THREADS`` is kept
    unless :data:`MARKER` shows it was exported by :func:`apply`); ``affinity``: CPUs of the
    affinity mask; ``quota``: cgroup quota in cores; ``load_1min``, ``host_cpus``: the host's load
    average and CPU count; ``xdist_workers``, ``dask_workers``: processes computing at once on
    this host (each at least 1)."""
    env = os.environ if env is None else env
    cores = usable_cores(affinity, quota)
    processes = max(1, int(xdist_workers)) * max(1, int(dask_workers))
    if option is not None:
        if isinstance(option, bool) or int(option) != option or option < 1:
            raise ValueError(f"--threads {option}: allowed an integer >= 1")
        return ThreadPlan(int(option), ThreadSource.OPTION, cores, 0.0, processes)
    user = env.get("OMP_NUM_THREADS", "").strip()
    if user and user != env.get(MARKER, "").strip():
        try:
            n = int(user.split(",")[0])
        except ValueError:
            n = 0
        if n >= 1:
            return ThreadPlan(n, ThreadSource.ENVIRONMENT, cores, 0.0, processes)
    busy = busy_cores(cores, load_1min, host_cpus)
    threads = max(1, math.floor((cores - busy) / processes))
    return ThreadPlan(threads, ThreadSource.AUTO, cores, busy, processes)


def host_plan(option: int | None = None, xdist_workers: int = 1, dask_workers: int = 1) -> ThreadPlan:
    """:func:`plan` with this host's affinity, cgroup quota and load average."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    return plan(option, os.environ, affinity=affinity_cores(), quota=cgroup_cpu_quota(), load_1min=load,
                host_cpus=os.cpu_count(), xdist_workers=xdist_workers, dask_workers=dask_workers)


_applied: ThreadPlan | None = None


def apply(p: ThreadPlan) -> ThreadPlan:
    """Make ``p`` this process's thread count (and its children's, through the environment)."""
    global _applied
    n = str(p.threads)
    for var in THREAD_VARS:
        os.environ[var] = n
    os.environ[MARKER] = n
    if p.threads > 1:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" in sys.modules:  # imported already: its pools read the variables only at start
        import torch

        torch.set_num_threads(p.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=p.threads)  # BLAS/OpenMP libraries loaded so far (numpy's OpenBLAS)
    except ImportError:
        pass
    _applied = p
    return p


def applied() -> ThreadPlan | None:
    """The plan :func:`apply` set in this process (None when none was)."""
    return _applied


def describe_current() -> str:
    """The threads of this process, for a start line: the applied plan, else torch's count."""
    if _applied is not None:
        return _applied.describe()
    if "torch" in sys.modules:
        import torch

        n = torch.get_num_threads()
        return f"{n} thread{'s' if n != 1 else ''} (torch's default)"
    return "threads not set by pto-checks"


def apply_in_worker() -> ThreadPlan:
    """In a Dask worker: the threads the submitting process chose for it (``PTO_CHECKS_THREADS``
    in the worker's environment), else the worker's share of its host by :func:`host_plan` (the
    Nanny's own ``OMP_NUM_THREADS=1`` counts as a user's setting)."""
    if _applied is not None:
        return _applied
    marked = os.environ.get(MARKER, "").strip()
    if marked.isdigit() and int(marked) >= 1 and os.environ.get("OMP_NUM_THREADS", "").strip() == marked:
        return apply(ThreadPlan(int(marked), ThreadSource.AUTO, usable_cores(), 0.0, 1))
    return apply(host_plan())
