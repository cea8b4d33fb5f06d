"""On-disk cache of expensive results, keyed by everything that determines them.

Layout: ``ROOT/<stage>/<key>/`` holding the stage's files and ``meta.json`` (written last, so
an entry without it is incomplete and recomputed).  Writes go to a temporary folder that is
renamed into place (atomic on POSIX); a per-key lock file serialises pytest-xdist workers, so
two workers never compute the same entry (``filelock``; the holder's host, PID and start time are
recorded next to the lock, and a waiting process says who holds the entry and for how long).

Nothing read back is trusted: ``meta.json`` must parse, hold the entry's own key and the inputs
it was asked for, and the stage's ``validate(folder, data)`` hook must accept the files.  An entry
that fails is moved aside to ``<key>.corrupt-<UTC time>`` with a :class:`CacheWarning` naming
the file, and recomputed.  Nothing in an entry is unpickled here.
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
import warnings
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


def stage_key(stage: str, **inputs: Any) -> tuple[str, dict[str, Any]]:
    """(cache key, inputs) of ``stage``: the inputs are stored in the entry and compared on reading."""
    return cache_key(stage, **inputs), inputs


#: ``validate(folder, data)``: raise (preferably :class:`CorruptEntry`) when the entry's files are unusable
Validator = Callable[[Path, dict[str, Any]], None]


class CacheWarning(UserWarning):
    """A cache entry (or resumable work folder) was unusable, moved aside and is being recomputed."""


class CorruptEntry(Exception):
    """Raised by a stage's validator: ``path`` (a file of the entry) is unreadable or inconsistent."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def check_file(folder: Path, name: str, read: Callable[[Path], Any]) -> Any:
    """``read(folder / name)``; any failure (missing, truncated, unparsable) becomes :class:`CorruptEntry`
    naming the file.  For validators."""
    path = folder / name
    if not path.is_file():
        raise CorruptEntry(path, "missing")
    try:
        return read(path)
    except Exception as exc:
        raise CorruptEntry(path, f"unreadable ({type(exc).__name__}: {str(exc)[:200]})") from None


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` but ``meta.json``, by path relative to it (what an
    entry records at commit and checks on every read: an edit through a hard link, a copy cut
    short or a swapped file is found)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.relative_to(folder).as_posix() != "meta.json":
            h = hashlib.sha256()
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            out[p.relative_to(folder).as_posix()] = h.hexdigest()
    return out


def check_no_links(folder: Path) -> None:
    """Raise :class:`CorruptEntry` naming the first symlink (or other non-regular file) in
    ``folder``: pto-checks never writes one, so a read or a write would follow a planted one."""
    from pto_checks.safe_files import links_in

    bad = links_in(folder)
    if bad:
        target = os.readlink(bad[0]) if bad[0].is_symlink() else "not a regular file"
        raise CorruptEntry(bad[0], f"a link or special file ({target}), not written by pto-checks; not followed")


def _normal(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples -> lists, numpy -> Python), for comparisons."""
    return json.loads(json.dumps(obj, sort_keys=True, default=_default))


def quarantine(path: Path, reason: str) -> Path:
    """Move ``path`` (an entry or work folder) aside to ``<name>.corrupt-<UTC time>`` and warn, naming
    the file and the reason.  Returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"{time.time_ns() % 10**9:09d}"
    dest = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, dest)
    from pto_checks.safe_files import KEEP_NEWEST, prune

    pruned = prune(path.parent, "*.corrupt-*", KEEP_NEWEST)  # kept for inspection, not forever
    warnings.warn(CacheWarning(f"pto-checks cache: {reason}; moved aside to {dest.name}, recomputing"
                               + (f" ({len(pruned)} older quarantined folder(s) removed: the {KEEP_NEWEST} newest are "
                                  "kept)" if pruned else "")),
                  stacklevel=3)
    return dest


class Cache:
    """A cache rooted at ``root`` (created on demand)."""

    def __init__(self, root: str | os.PathLike[str], enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled
        #: entries committed through this object: read back even when disabled (``--recompute``
        #: recomputes each entry once per session, not once per reader)
        self.fresh: set[tuple[str, str]] = set()
        self.report_every_s = 30.0  #: how often a process waiting for a lock says who holds it
        #: a holder on this host seen stopped (SIGSTOP, a debugger) this long is reported as stopped
        self.stopped_after_s = STOPPED_AFTER_S
        #: where waiting is said (the pytest plugin: the terminal, past pytest's output capture)
        self.notify: Callable[[str], None] = _stderr_line

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def looks_finished(self, stage: str, key: str) -> bool:
        """Whether a finished entry is there (its ``meta.json``), without a lock or validation: for
        planning and messages only; reads go through :meth:`claim` / :meth:`read_entry`."""
        return (self.entry(stage, key) / "meta.json").exists()

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
        stopped_since: float | None = None
        while True:
            try:
                lock.acquire(timeout=self.report_every_s if blocking else 0)
                break
            except filelock.Timeout:
                if not blocking:
                    yield False
                    return
                waited += self.report_every_s
                line = f"[pto-checks] waiting {waited:.0f} s for cache entry {stage}/{key}: {describe_holder(holder)}"
                if holder_stopped(holder):
                    stopped_since = waited if stopped_since is None else stopped_since
                    if waited - stopped_since + self.report_every_s >= self.stopped_after_s:
                        pid = _holder_record(holder).get("pid")
                        line += (f"; PID {pid} is STOPPED (SIGSTOP or a debugger; seen stopped for "
                                 f"{waited - stopped_since + self.report_every_s:.0f} s): it will not release the "
                                 f"entry until continued (kill -CONT {pid}) or ended")
                else:
                    stopped_since = None
                self.notify(line)
        try:
            write_json_atomic(holder, {"host": socket.gethostname(), "pid": os.getpid(), "start": time.time(),
                                       "start_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            yield True
        finally:
            with contextlib.suppress(FileNotFoundError):
                holder.unlink()
            lock.release()

    @contextlib.contextmanager
    def claim(self, stage: str, key: str, resumable: bool = False, blocking: bool = True,
              validate: Validator | None = None, inputs: dict[str, Any] | None = None
              ) -> Iterator[Claim | None]:
        """Hold one entry while computing it: yields a :class:`Claim` (a hit, or a work folder to
        fill and :meth:`Claim.commit`), or None when another process holds it and ``blocking`` is
        False.  Several claims can be held at once (a batched computation of many entries).

        A finished entry is a hit only if it reads back (:meth:`read_entry`); otherwise it is moved
        aside and the claim is a miss.  ``inputs`` (JSON: what the key was derived from) is stored
        in ``meta.json`` and compared on reading.
        """
        final = self.entry(stage, key)
        with self.lock(stage, key, blocking) as held:
            if not held:
                yield None
                return
            if (self.enabled or (stage, key) in self.fresh) and final.exists():
                data = self.read_entry(stage, key, validate, inputs)
                if data is not None:
                    yield Claim(final, final, data, True, stage, key, inputs)
                    return
            final.parent.mkdir(parents=True, exist_ok=True)
            if resumable:
                work = final.parent / f"{key}.partial"
                if not self.enabled:
                    shutil.rmtree(work, ignore_errors=True)
                try:
                    if work.exists() or work.is_symlink():
                        check_no_links(work)
                except CorruptEntry as exc:  # never write through a planted link
                    quarantine(work, str(exc))
                work.mkdir(exist_ok=True)
            else:
                work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
            claim = Claim(final, work, None, False, stage, key, inputs)
            try:
                yield claim
            finally:
                if claim.committed:
                    self.fresh.add((stage, key))
                elif not resumable:
                    shutil.rmtree(work, ignore_errors=True)

    def read_entry(self, stage: str, key: str, validate: Validator | None = None,
                   inputs: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The data of a finished entry, or None when there is none.  An unreadable, truncated or
        mismatched entry (``meta.json`` of another key or other inputs, or files that ``validate``
        rejects) is moved aside with a warning naming the file, and None is returned.
        Call with the entry's lock held."""
        final = self.entry(stage, key)
        meta_path = final / "meta.json"
        if not final.exists():
            return None
        try:
            if not final.is_dir() or final.is_symlink():
                raise CorruptEntry(final, "not a folder")
            check_no_links(final)
            if not meta_path.exists():
                raise CorruptEntry(meta_path, "missing (an entry without it is incomplete)")
            stored = check_file(final, "meta.json", lambda p: json.loads(p.read_text()))
            if not isinstance(stored, dict) or not isinstance(stored.get("data"), dict):
                raise CorruptEntry(meta_path, "no data (truncated or not written by pto-checks)")
            if stored.get("key") != key or stored.get("stage") != stage:
                raise CorruptEntry(meta_path, f"written for {stored.get('stage')}/{stored.get('key')}, "
                                              f"not {stage}/{key}")
            if inputs is not None and stored.get("inputs") != _normal(inputs):
                raise CorruptEntry(meta_path, "its stored inputs differ from the ones asked for")
            if validate is not None:
                validate(final, stored["data"])
            _check_hashes(final, stored.get("files"))  # what the validator cannot see: an edited value
        except Exception as exc:
            reason = str(exc) if isinstance(exc, CorruptEntry) else f"{final}: {type(exc).__name__}: {exc}"
            quarantine(final, reason)
            return None
        return stored["data"]

    def get_or_compute(
        self,
        stage: str,
        key: str,
        compute: Callable[[Path], dict[str, Any]],
        meta: dict[str, Any] | None = None,
        resumable: bool = False,
        blocking: bool = True,
        validate: Validator | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> tuple[Path, dict[str, Any], bool] | None:
        """Return ``(folder, data, hit)``; on a miss ``compute(workdir)`` writes files and returns data.

        ``data`` (JSON) is stored in ``meta.json`` with ``meta``, the key and ``inputs``.  With
        ``resumable`` the work folder is ``<key>.partial`` and survives an interruption (the
        computation checkpoints into it and picks up from there next time); otherwise it is a fresh
        temporary folder, removed on failure.  With ``blocking=False``, returns None at once when
        another process holds the entry.  ``validate(folder, data)`` checks a hit's files (and a
        fresh result's, so that a validator that rejects good output is found at once).
        """
        with self.claim(stage, key, resumable, blocking, validate, inputs) as claim:
            if claim is None:
                return None
            if claim.hit:
                return claim.folder, claim.data, True
            data = compute(claim.work)
            if validate is not None:
                validate(claim.work, _normal(data))
            claim.commit(data, meta)
            return claim.folder, claim.data, False


def _check_hashes(folder: Path, recorded: Any) -> None:
    """The entry's files are the ones committed (SHA-256 recorded in ``meta.json``).  An entry of an
    older version records none: then a file with another hard link (a report folder that linked it)
    is refused, since it may have been edited through that link."""
    if recorded is None:
        for p in folder.rglob("*"):
            if p.is_file() and p.stat().st_nlink > 1:
                raise CorruptEntry(p, f"shares its inode with {p.stat().st_nlink - 1} other link(s) (it may have "
                                      "been edited through one) and the entry records no checksum")
        return
    if not isinstance(recorded, dict):
        raise CorruptEntry(folder / "meta.json", "'files' malformed")
    now = file_hashes(folder)
    for name, sha in recorded.items():
        if name not in now:
            raise CorruptEntry(folder / name, "missing")
        if now[name] != sha:
            raise CorruptEntry(folder / name, "changed since it was written (SHA-256 differs from meta.json)")


class Claim:
    """An entry held by :meth:`Cache.claim`: ``hit`` with ``data``, or ``work`` to fill and commit."""

    def __init__(self, folder: Path, work: Path, data: dict[str, Any] | None, hit: bool,
                 stage: str = "", key: str = "", inputs: dict[str, Any] | None = None):
        self.folder, self.work, self.data, self.hit = folder, work, data, hit
        self.stage, self.key, self.inputs = stage, key, inputs
        self.committed = hit

    def commit(self, data: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
        """Write ``meta.json`` (with the key, the inputs and the SHA-256 of every file) and move the
        work folder into place (atomically).  A work folder holding a link is refused."""
        check_no_links(self.work)
        write_json_atomic(self.work / "meta.json", {"stage": self.stage, "key": self.key,
                                                    "inputs": _normal(self.inputs), "meta": meta or {},
                                                    "files": file_hashes(self.work), "data": data})
        if self.folder.is_symlink():
            self.folder.unlink()
        elif self.folder.exists():
            shutil.rmtree(self.folder)
        os.replace(self.work, self.folder)
        self.data, self.committed = _normal(data), True

    def discard_work(self, reason: str) -> Path | None:
        """The hook for a computation that finds its resumable work folder unusable (e.g. a
        checkpoint that does not load or belongs to another task): move it aside to
        ``<key>.partial.corrupt-<time>`` with a warning naming ``reason`` (name the file in it),
        and start again in a fresh, empty work folder.  Returns where it was moved."""
        if self.hit or self.committed:
            raise RuntimeError("discard_work: this claim holds no work folder")
        dest = quarantine(self.work, reason) if self.work.exists() else None
        self.work.mkdir(parents=True, exist_ok=True)
        return dest


def _stderr_line(line: str) -> None:
    sys.__stderr__.write(line + "\n")
    sys.__stderr__.flush()


#: seconds a lock holder on this host must be seen stopped before a waiter reports it as stopped
STOPPED_AFTER_S = 60.0


def _holder_record(holder: Path) -> dict[str, Any]:
    try:
        h = json.loads(holder.read_text())
    except (OSError, ValueError):
        return {}
    return h if isinstance(h, dict) else {}


def holder_stopped(holder: Path) -> bool:
    """Whether the lock holder (its ``.holder`` record) is a process on this host that is alive but
    stopped (state T or t in ``/proc/PID/stat``: SIGSTOP, Ctrl-Z, a debugger).  False where that
    cannot be told (another host, no ``/proc``)."""
    h = _holder_record(holder)
    if h.get("host") != socket.gethostname():
        return False
    try:
        stat = Path(f"/proc/{int(h['pid'])}/stat").read_text()
    except (OSError, KeyError, ValueError, TypeError):
        return False
    state = stat.rpartition(")")[2].split()[:1]  # the name in parentheses may hold spaces
    return state in (["T"], ["t"])


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


def write_json_atomic(path: str | os.PathLike[str], obj: Any, shared: bool = False) -> None:
    """Write JSON to ``path`` via a temporary file in the same folder and ``os.replace`` (a link at
    ``path`` is replaced, never written through).  ``shared``: readable by others as the umask
    allows (a report's results.json, a baseline); else private to this user (the cache)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if shared:
            from pto_checks.safe_files import shared_mode

            os.fchmod(fd, shared_mode())
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
