"""Read a MACE model file pickled under another e3nn version: rebuild it under the installed one.

MACE users' ``.model`` files (every released MACE-MP file, and fine-tunes saved by ``mace_run_train``)
are whole-module pickles made under the e3nn that mace-torch pins (0.4.4). e3nn's ``CodeGenMixin``
pickles its generated code in a version-specific form, so under e3nn 0.6 ``torch.load`` fails in
``CodeGenMixin.__setstate__`` ("too many values to unpack"). The architecture and the weights are
plain data, though: this module unpickles the file with the generated-code state dropped (the
objects are never run), reads the architecture with MACE's own
``mace.tools.scripts_utils.extract_config_mace_model`` (what MACE's converters use), builds the same
class under the installed e3nn, and loads the file's ``state_dict``: every tensor of the file, no
unexpected key, no missing key except the constants of e3nn's own generated code (Wigner 3j
buffers). The converted weights are saved once as a ``state_dict`` (loaded with
``weights_only=True``: no object is unpickled from the cache folder), keyed by the SHA-256 of the
user's file, with their own SHA-256 recorded beside them and checked before they are read; written
atomically under a lock. ``tests/harness/test_adapters.py`` shows
energies, forces and stress equal to those computed under mace-torch's own pins (to 1.3e-14 here;
the test demands 1e-6).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

CONVERTER_VERSION = 1


def cache_dir() -> Path:
    """``$PTO_CHECKS_MACE_CACHE``, else ``$XDG_CACHE_HOME/pto-checks/mace`` (default ``~/.cache``)."""
    env = os.environ.get("PTO_CHECKS_MACE_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pto-checks" / "mace"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the user's file (its fingerprint and the key of its converted copy)."""
    from pto_checks.models.base import sha256_file

    return sha256_file(path)


def is_e3nn_mismatch(exc: BaseException) -> bool:
    """True for the errors ``torch.load`` raises on a MACE pickle from another e3nn version."""
    text = f"{type(exc).__name__}: {exc}"
    for e in (exc, exc.__cause__, exc.__context__):
        if e is None:
            continue
        tb = e.__traceback__
        while tb is not None:
            if "e3nn" in tb.tb_frame.f_code.co_filename and "codegen" in tb.tb_frame.f_code.co_filename:
                return True
            tb = tb.tb_next
    return "too many values to unpack" in text or ("Can't get attribute" in text and "e3nn" in text)


@contextlib.contextmanager
def _codegen_state_dropped():
    """Unpickle e3nn modules without their generated code (0.4.4 stores it in another form)."""
    from e3nn.util.codegen import CodeGenMixin

    original = CodeGenMixin.__setstate__

    def setstate(self: Any, d: dict) -> None:
        d = dict(d)
        d.pop("__codegen__", None)
        super(CodeGenMixin, self).__setstate__(d)

    CodeGenMixin.__setstate__ = setstate
    try:
        yield
    finally:
        CodeGenMixin.__setstate__ = original


def read_foreign(path: str | os.PathLike[str]) -> Any:
    """The pickled MACE module of ``path``, unpickled for its attributes and weights only (not runnable)."""
    import torch

    with _codegen_state_dropped():
        return torch.load(str(path), map_location="cpu", weights_only=False)


def rebuild(old: Any) -> Any:
    """The same MACE architecture built under the installed e3nn, with ``old``'s weights (strict)."""
    return _load_checked(_build(old), old.state_dict())


def _build(old: Any) -> Any:
    """An untrained module of ``old``'s architecture under the installed e3nn, in ``old``'s dtype."""
    import torch
    from mace.tools.scripts_utils import extract_config_mace_model

    config = extract_config_mace_model(old)
    if "error" in config:
        raise ValueError(f"cannot convert this MACE model: {config['error']}")
    dtype = next(t.dtype for t in old.state_dict().values() if t.is_floating_point())
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return old.__class__(**config).to(dtype)
    finally:
        torch.set_default_dtype(previous)


def _load_checked(new: Any, state: dict) -> Any:
    """``new`` with ``state`` loaded: every tensor of it, no unexpected key, no missing key but the
    constants of e3nn's own generated code (Wigner 3j buffers)."""
    result = new.load_state_dict(state, strict=False)
    generated = tuple(f"{prefix}.{fname}." if prefix else f"{fname}."
                      for prefix, mod in new.named_modules() for fname in getattr(mod, "__codegen__", []))
    not_generated = [k for k in result.missing_keys if not k.startswith(generated)]
    if result.unexpected_keys or not_generated:
        raise ValueError(f"weights do not fit the rebuilt architecture: unexpected {result.unexpected_keys[:5]}, "
                         f"missing {not_generated[:5]}")
    return new


def converted_path(path: str | os.PathLike[str], sha: str | None = None) -> Path:
    """Path of the weights of ``path`` converted for the installed e3nn (converting once, keyed by
    the file's SHA-256, the e3nn version and :data:`CONVERTER_VERSION`).

    The file holds a ``state_dict`` only (tensors: loaded with ``torch.load(weights_only=True)``,
    which unpickles no object), and its SHA-256 is recorded beside it (``.sha256``) and checked
    before it is read: a file planted or damaged in the cache folder is never unpickled as code,
    and one that does not match its record is rebuilt.  Written atomically, under a lock."""
    import e3nn
    import torch
    from filelock import FileLock

    sha = sha or file_sha256(path)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{sha}-e3nn{e3nn.__version__}-v{CONVERTER_VERSION}.weights.pt"
    record = out.with_name(out.name + ".sha256")
    with FileLock(str(out) + ".lock"):
        if _matches_record(out, record):
            return out
        for p in (out, record):  # stale, damaged or planted: rebuilt, never read
            if p.is_symlink() or p.exists():
                p.unlink()
        state = rebuild(read_foreign(path)).state_dict()
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        os.close(fd)
        try:
            torch.save(state, tmp)
            digest = file_sha256(tmp)
            os.replace(tmp, out)
            fd, tmp_rec = tempfile.mkstemp(dir=folder, suffix=".part")
            with os.fdopen(fd, "w") as fh:
                fh.write(digest + "\n")
            os.replace(tmp_rec, record)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out


def _matches_record(out: Path, record: Path) -> bool:
    if out.is_symlink() or record.is_symlink() or not (out.is_file() and record.is_file()):
        return False
    try:
        return record.read_text().strip() == file_sha256(out)
    except OSError:
        return False


def load_converted(path: str | os.PathLike[str], sha: str | None = None) -> tuple[Any, Path]:
    """The MACE module of ``path`` for the installed e3nn: the architecture read from the user's
    own file, the weights from the verified conversion cache (:func:`converted_path`), loaded with
    ``weights_only=True``.  Returns (module, the cached weights file)."""
    import torch

    out = converted_path(path, sha)
    if not _matches_record(out, out.with_name(out.name + ".sha256")):  # changed since it was checked
        raise ValueError(f"{out}: does not match its recorded SHA-256; not loaded")
    state = torch.load(str(out), map_location="cpu", weights_only=True)
    return _load_checked(_build(read_foreign(path)), state), out
