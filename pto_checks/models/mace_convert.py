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
buffers). The converted module is saved once, keyed by the SHA-256 of the user's file, written
atomically under a lock and re-checked when read. ``tests/harness/test_adapters.py`` shows
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
    import torch
    from mace.tools.scripts_utils import extract_config_mace_model

    config = extract_config_mace_model(old)
    if "error" in config:
        raise ValueError(f"cannot convert this MACE model: {config['error']}")
    dtype = next(t.dtype for t in old.state_dict().values() if t.is_floating_point())
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        new = old.__class__(**config)
    finally:
        torch.set_default_dtype(previous)
    state = old.state_dict()
    result = new.load_state_dict(state, strict=False)
    # Every tensor of the file is loaded; the only keys the file may lack are the constants of the
    # code e3nn generates itself from the irreps (Wigner 3j buffers of its compiled submodules).
    generated = tuple(f"{prefix}.{fname}." if prefix else f"{fname}."
                      for prefix, mod in new.named_modules() for fname in getattr(mod, "__codegen__", []))
    not_generated = [k for k in result.missing_keys if not k.startswith(generated)]
    if result.unexpected_keys or not_generated:
        raise ValueError(f"weights do not fit the rebuilt architecture: unexpected {result.unexpected_keys[:5]}, "
                         f"missing {not_generated[:5]}")
    return new.to(dtype)


def converted_path(path: str | os.PathLike[str], sha: str | None = None) -> Path:
    """Path of the file converted for the installed e3nn (converting it once, cached by SHA-256)."""
    import e3nn
    import torch
    from filelock import FileLock

    sha = sha or file_sha256(path)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{sha}-e3nn{e3nn.__version__}-v{CONVERTER_VERSION}.model"
    with FileLock(str(out) + ".lock"):
        if out.is_file():
            try:
                torch.load(str(out), map_location="cpu", weights_only=False)
                return out
            except Exception:  # a corrupt entry is rebuilt, never used
                out.unlink()
        new = rebuild(read_foreign(path))
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        os.close(fd)
        try:
            torch.save(new, tmp)
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out
