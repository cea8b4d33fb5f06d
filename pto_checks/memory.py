"""How much memory this process may still take: what bounds the batched engine's batch on a CPU.

The smaller of the host's ``MemAvailable`` (``/proc/meminfo``: free memory plus what the kernel
can reclaim) and what is left under this process's cgroup limit (``memory.max`` minus
``memory.current`` in cgroup v2, ``memory.limit_in_bytes`` minus ``memory.usage_in_bytes`` in
v1), the limit a container or batch job sets.  ``None`` where neither can be read (not Linux).
"""

from __future__ import annotations

from pathlib import Path

from pto_checks.threads import cgroup_parents, cgroup_paths

_NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as a huge number (9223372036854771712)


def meminfo_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """``MemAvailable`` in bytes, or None."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cgroup_headroom(root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")
                    ) -> int | None:
    """Bytes left under this process's cgroup memory limit (the tightest of its cgroup and
    parents), or None without a limit."""
    rel_v2, rel_v1 = cgroup_paths("memory", self_cgroup)
    left: list[int] = []
    for d in cgroup_parents(root, rel_v2):
        h = _headroom(d / "memory.max", d / "memory.current")
        if h is not None:
            left.append(h)
    for d in cgroup_parents(root / "memory", rel_v1):
        h = _headroom(d / "memory.limit_in_bytes", d / "memory.usage_in_bytes")
        if h is not None:
            left.append(h)
    return min(left) if left else None


def _headroom(limit_path: Path, usage_path: Path) -> int | None:
    try:
        raw = limit_path.read_text().strip()
    except OSError:
        return None
    if raw == "max":
        return None
    try:
        limit = int(raw)
    except ValueError:
        return None
    if limit <= 0 or limit >= _NO_LIMIT:
        return None
    try:
        usage = int(usage_path.read_text().strip())
    except (OSError, ValueError):
        usage = 0
    return max(0, limit - usage)


def available_bytes() -> tuple[int | None, str]:
    """(bytes this process may still take, where the number came from), e.g.
    ``(24e9, "MemAvailable")`` or ``(3e9, "cgroup memory limit")``; ``(None, "unknown")``."""
    host, cg = meminfo_available(), cgroup_headroom()
    if cg is not None and (host is None or cg < host):
        return cg, "cgroup memory limit"
    if host is not None:
        return host, "MemAvailable"
    return None, "unknown"
