"""Start-up validation of the command line: paths, device and model files, before any work.

The protocol's own fields are validated next to their declarations (:mod:`pto_checks.protocols`);
this module owns the options that name files and machines.  Every problem is an
:class:`OptionError` of one line naming the option, the value and what is allowed; the pytest
plugin turns it into a usage error (exit status 4) before anything is computed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pto_checks.models.families import FAMILIES

#: families whose path option must name an existing local file (when given)
FILE_OPTIONS = {f.name: f.file_option for f in FAMILIES.values() if f.file_option}


class OptionError(ValueError):
    """A command-line option that cannot work (one line: option, value, what is allowed)."""


def writable_dir(option: str, value: str | os.PathLike[str]) -> Path:
    """``value`` is, or can be created as, a folder this process can write into: created and probed
    with a temporary file (so read-only file systems and files in the way are found now)."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise OptionError(f"{option} {value}: exists and is not a folder; give a folder to write into")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise OptionError(f"{option} {value}: not a writable folder ({exc.strerror or exc}); "
                          "give a folder you can write into") from None
    return path


def report_dir(option: str, value: str | os.PathLike[str]) -> Path:
    """``value`` is a writable folder that is new, empty or a pto-checks report folder (its marker
    file, :data:`pto_checks.safe_files.REPORT_MARKER`, is written now): a folder of the user's
    files is refused before any work, since the report replaces files there."""
    from pto_checks.safe_files import UnsafePath, claim_report_dir

    writable_dir(option, value)
    try:
        return claim_report_dir(value)
    except UnsafePath as exc:
        raise OptionError(f"{option} {exc}") from None


def results_file(option: str, value: str | os.PathLike[str]) -> dict[str, Any]:
    """``value`` is a readable pto-checks results file of the current schema; returns it."""
    from pto_checks.results import SCHEMA_VERSION, ResultsError, load

    try:
        data = load(value)
    except FileNotFoundError:
        raise OptionError(f"{option} {value}: no such file") from None
    except OSError as exc:
        raise OptionError(f"{option} {value}: unreadable ({exc.strerror or exc})") from None
    except ResultsError as exc:  # a check that is no object, a status its verdict does not give, ...
        raise OptionError(f"{option} {exc}") from None
    except (ValueError, AttributeError) as exc:  # JSONDecodeError is a ValueError; a list has no .get
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise OptionError(f"{option} {value}: not a pto-checks results file of schema_version "
                          f"{SCHEMA_VERSION} ({msg})") from None
    models = data.get("models")
    if not isinstance(models, dict) or not all(isinstance(m, dict) and isinstance(m.get("checks", {}), dict)
                                               for m in models.values()):
        raise OptionError(f"{option} {value}: not a pto-checks results file ('models' missing or malformed)")
    return data


def device(option: str, value: str) -> str:
    """``value`` names a device this machine has (``cuda`` needs a GPU that torch sees)."""
    from pto_checks.models import resolve_device

    try:
        return resolve_device(value)
    except ValueError as exc:
        raise OptionError(f"{option} {value}: {exc}") from None


def model_files(specs: Iterable[Any]) -> None:
    """Each model's weights file named on the command line or in a ``--model-file`` exists."""
    for spec in specs:
        key = FILE_OPTIONS.get(spec.family)
        value = spec.options.get(key) if key else None
        if value and "://" not in str(value) and not Path(value).is_file():
            raise OptionError(f"--model {spec.name}: {key} {value}: no such file (a {spec.family} model file)")


def check_startup(get: Callable[[str], Any], specs: Iterable[Any]) -> dict[str, Any]:
    """Validate the path, device and model options (``get`` reads an option, e.g. ``config.getoption``);
    raise :class:`OptionError` on the first problem.  Returns what was read: ``baseline``, ``compare``."""
    out: dict[str, Any] = {"baseline": None, "compare": None}
    if get("--report"):
        report_dir("--report", get("--report"))
    if get("--pto-cache"):
        writable_dir("--pto-cache", get("--pto-cache"))
    if get("--compare"):
        out["compare"] = results_file("--compare", get("--compare"))
    bpath = get("--baseline")
    if bpath and get("--update-baseline"):
        writable_dir("--baseline (its folder)", Path(bpath).resolve().parent)
    elif bpath:
        if not Path(bpath).is_file():
            raise OptionError(f"--baseline {bpath}: no such file. Create it with --baseline {bpath} "
                              "--update-baseline")
        out["baseline"] = results_file("--baseline", bpath)
    if str(get("--device")).startswith("cuda"):  # auto and cpu always work (torch imported only here)
        device("--device", get("--device"))
    model_files(specs)
    return out

