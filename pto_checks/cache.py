"""On-disk cache of expensive results, keyed by everything that determines them.

Layout: ``ROOT/<stage>/<key>/`` holding the stage's files and ``meta.json`` (written last, so
an entry without it is incomplete and recomputed).  Writes go to a temporary folder that is
renamed into place (atomic on POSIX); a per-key lock file serialises pytest-xdist workers, so
two workers never compute the same entry (``filelock``; the holder's host, PID and start time are
recorded next to the lock, and a waiting process says who holds the entry and for how long).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Bump a stage's version when its code changes what it computes.
STAGE_VERSIONS = {"ground_state": 2, "phonons": 4, "md": 1, "elastic": 1}


def cache_key(stage: str, **parts: Any) -> str:
    """Stable hex key of a stage, its code version and the parts that determine its result."""
    payload = {"stage": stage, "stage_version": STAGE_VERSIONS.get(stage, 0), **parts}
    blob = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class Cache:
    """A cache rooted at ``root`` (created on demand)."""

    def __init__(self, root: str | os.PathLike[str], enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled
        #: entries committed through this object: read back even when disabled (``--recompute``
        #: recomputes each entry once per session, not once per reader)
        self.fresh: set[tuple[str, str]] = set()
        self.report_every_s = 30.0  #: how often a process waiting for a lock says who holds it
        self.notify: Callable[[str], None] = _stderr_line

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    @contextlib.contextmanager
    def lock(self, stage: str, key: str, blocking: bool = True) -> Iterator[bool]:
        """Exclusive lock for one entry (``filelock``: portable, lock files never followed through
        symlinks); yields True when held.  Blocks while another process holds it, saying every
        ``report_every_s`` who holds it (host, PID, since when) and for how long; with
        ``blocking=False`` yields False at once instead.  The holder is recorded in
        ``<key>.lock.holder`` (JSON) while it holds the lock."""
        import filelock

        d = self.root / stage
        d.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(d / f"{key}.lock", is_singleton=False)
        holder = d / f"{key}.lock.holder"
        waited = 0.0
        while True:
            try:
                lock.acquire(timeout=self.report_every_s if blocking else 0)
                break
            except filelock.Timeout:
                if not blocking:
                    yield False
                    return
                waited += self.report_every_s
                self.notify(f"[pto-checks] waiting {waited:.0f} s for cache entry {stage}/{key}: "
                            f"{describe_holder(holder)}")
        try:
            write_json_atomic(holder, {"host": socket.gethostname(), "pid": os.getpid(), "start": time.time(),
                                       "start_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            yield True
        finally:
            with contextlib.suppress(FileNotFoundError):
                holder.unlink()
            lock.release()

    @contextlib.contextmanager
    def claim(self, stage: str, key: str, resumable: bool = False, blocking: bool = True
              ) -> Iterator[Claim | None]:
        """Hold one entry while computing it: yields a :class:`Claim` (a hit, or a work folder to
        fill and :meth:`Claim.commit`), or None when another process holds it and ``blocking`` is
        False.  Several claims can be held at once (a batched computation of many entries)."""
        final = self.entry(stage, key)
        with self.lock(stage, key, blocking) as held:
            if not held:
                yield None
                return
            if (self.enabled or (stage, key) in self.fresh) and (final / "meta.json").is_file():
                yield Claim(final, final, json.loads((final / "meta.json").read_text())["data"], True)
                return
            final.parent.mkdir(parents=True, exist_ok=True)
            if resumable:
                work = final.parent / f"{key}.partial"
                if not self.enabled:
                    shutil.rmtree(work, ignore_errors=True)
                work.mkdir(exist_ok=True)
            else:
                work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
            claim = Claim(final, work, None, False)
            try:
                yield claim
            finally:
                if claim.committed:
                    self.fresh.add((stage, key))
                elif not resumable:
                    shutil.rmtree(work, ignore_errors=True)

    def get_or_compute(
        self,
        stage: str,
        key: str,
        compute: Callable[[Path], dict[str, Any]],
        meta: dict[str, Any] | None = None,
        resumable: bool = False,
        blocking: bool = True,
    ) -> tuple[Path, dict[str, Any], bool] | None:
        """Return ``(folder, data, hit)``; on a miss ``compute(workdir)`` writes files and returns data.

        ``data`` (JSON) is stored in ``meta.json`` with ``meta``.  With ``resumable`` the work folder
        is ``<key>.partial`` and survives an interruption (the computation checkpoints into it and
        picks up from there next time); otherwise it is a fresh temporary folder, removed on failure.
        With ``blocking=False``, returns None at once when another process holds the entry.
        """
        with self.claim(stage, key, resumable, blocking) as claim:
            if claim is None:
                return None
            if claim.hit:
                return claim.folder, claim.data, True
            claim.commit(compute(claim.work), meta)
            return claim.folder, claim.data, False


class Claim:
    """An entry held by :meth:`Cache.claim`: ``hit`` with ``data``, or ``work`` to fill and commit."""

    def __init__(self, folder: Path, work: Path, data: dict[str, Any] | None, hit: bool):
        self.folder, self.work, self.data, self.hit = folder, work, data, hit
        self.committed = hit

    def commit(self, data: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
        """Write ``meta.json`` and move the work folder into place (atomically)."""
        write_json_atomic(self.work / "meta.json", {"meta": meta or {}, "data": data})
        if self.folder.exists():
            shutil.rmtree(self.folder)
        os.replace(self.work, self.folder)
        self.data, self.committed = data, True


def _stderr_line(line: str) -> None:
    sys.__stderr__.write(line + "\n")
    sys.__stderr__.flush()


def describe_holder(holder: Path) -> str:
    """Who holds a lock, from its ``.holder`` record: host, PID, since when and for how long."""
    try:
        h = json.loads(holder.read_text())
    except (OSError, ValueError):
        return "held by another process (no holder record yet)"
    age = time.time() - float(h.get("start", time.time()))
    alive = ""
    if h.get("host") == socket.gethostname():
        try:
            os.kill(int(h["pid"]), 0)
        except ProcessLookupError:
            alive = " (that process no longer exists)"
        except (PermissionError, ValueError, KeyError):
            pass
    return (f"held by PID {h.get('pid')} on {h.get('host')} since {h.get('start_utc')} "
            f"({age:.0f} s){alive}; stop that process to release it")


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False, default=_default)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    return repr(o)
