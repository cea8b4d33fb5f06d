"""Writing files that a user or another process may have planted links in, and a report folder
that never destroys a user's files.

* :func:`safe_name`: a model name (from a model file, a command line, an entry point) as one
  path component: never ``..``, never absolute, never a separator.
* :func:`replace_file` / :func:`write_text` / :func:`copy_file`: write through a fresh temporary
  file in the destination's folder and ``os.replace`` it into place.  ``os.replace`` replaces a
  symlink at the destination instead of writing through it, and the temporary file is created with
  ``O_EXCL`` (never an existing file or link), so a planted link is never followed.  A copy is a
  new inode: editing a report file never edits the cache entry it came from.
* :func:`claim_report_dir`: a report folder holds a marker file (:data:`REPORT_MARKER`); a
  non-empty folder without it is refused before any work, so ``--report ~/thesis`` cannot replace
  the figures or the report of a folder pto-checks did not make.
* :func:`prune`: temporary and quarantine folders (``.figures-new-*``, ``*.corrupt-*``) keep the
  :data:`KEEP_NEWEST` newest.

Files written for a report are made readable by others as the umask allows (the report folder is
meant to be shared, e.g. uploaded by CI), as a plain ``open()`` would make them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

#: marker file of a report folder written by pto-checks
REPORT_MARKER = ".pto-checks-report"
#: quarantine (``*.corrupt-*``), unreadable-results and temporary report folders kept, newest first
KEEP_NEWEST = 3


class UnsafePath(OSError):
    """A destination that is not ours to write (a link where a file is expected, a folder of the user)."""


def safe_name(name: str) -> str:
    """``name`` as one path component: letters, digits, ``-``, ``_`` and ``.`` kept, anything else
    (``/``, ``\\``, ``:``, spaces, control characters) replaced by ``_``; no leading dot (so never
    ``.`` or ``..``).  A name that looked like a path (a separator, a leading dot) or was cut gets 8
    hex digits of its SHA-256 appended, so ``a/b`` and ``a_b`` never share a folder; the common
    ``family:variant`` names stay readable (``synthetic:good`` -> ``synthetic_good``)."""
    cleaned = "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in name)
    cleaned = cleaned.lstrip(".") or "_"
    if any(sep in name for sep in "/\\") or name.startswith(".") or len(cleaned) > 120 or not name:
        cleaned = f"{cleaned[:120]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return cleaned


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def shared_mode(executable: bool = False) -> int:
    """The mode ``open()``/``mkdir`` would give a new file/folder under this process's umask."""
    return (0o777 if executable else 0o666) & ~_umask()


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str], shared: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; on success it replaces ``path`` atomically
    (a link at ``path`` is replaced, never followed); on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if shared:
            os.chmod(tmp, shared_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically, never through a link."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_with(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """``write(tmp)`` (e.g. ``fig.savefig``) into a temporary file that then replaces ``path``."""
    with replacing(path) as tmp:
        write(tmp)


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy ``src`` to ``dst`` as a new file (never a hard link: editing the copy never edits the
    source), atomically and never through a link at ``dst``.  A ``src`` that is a link is refused."""
    src = Path(src)
    if src.is_symlink() or not src.is_file():
        raise UnsafePath(f"{src}: not a regular file (a link or missing); not copied")
    with replacing(dst) as tmp:
        shutil.copyfile(src, tmp)


def links_in(folder: Path) -> list[Path]:
    """Every symlink and non-regular file under ``folder`` (and ``folder`` itself if it is a link)."""
    if folder.is_symlink():
        return [folder]
    bad = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        for n in dirs + files:
            p = Path(root) / n
            mode = p.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                bad.append(p)
    return bad


def claim_report_dir(path: str | os.PathLike[str]) -> Path:
    """Make ``path`` a pto-checks report folder: created (with its marker) if new or empty; accepted
    if it holds the marker; refused (:class:`UnsafePath`, one line) if it holds anything else, or
    if it or its marker is a link."""
    path = Path(path)
    if path.is_symlink():
        raise UnsafePath(f"{path} is a symbolic link; give the folder itself")
    marker = path / REPORT_MARKER
    if path.is_dir() and any(path.iterdir()) and not marker.exists():
        raise UnsafePath(f"{path} is not empty and was not written by pto-checks (no {REPORT_MARKER} file): "
                         "give a new or empty folder (pto-checks replaces report files and figures/ there)")
    if marker.is_symlink() or (marker.exists() and not marker.is_file()):
        raise UnsafePath(f"{marker}: not a plain file; remove it")
    path.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        write_text(marker, "This folder is a pto-checks report: pto-checks replaces report.html, report.md, "
                           "results.json, figures/, structures/, phonons/ and md/ here.\n")
    return path


def prune(folder: Path, pattern: str, keep: int = KEEP_NEWEST, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """Remove all but the ``keep`` newest entries of ``folder`` matching ``pattern`` (by modification
    time; never following links: a link is removed, not its target); returns those removed."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob(pattern) if p not in exclude]
    found.sort(key=lambda p: p.lstat().st_mtime, reverse=True)
    removed = []
    for p in found[keep:]:
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed
