"""Reference data (DFT, experiment, tolerances) read from ``pto_checks/reference_data/*.toml``.

Every number used by a check lives there with a ``source``; nothing here invents values.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]


def reference_dir() -> Path:
    """Directory holding the reference TOML files: ``pto_checks/reference_data`` (package data)."""
    folder = Path(__file__).resolve().parent / "reference_data"
    if not folder.is_dir():
        raise FileNotFoundError(f"pto-checks reference data not found in {folder}: reinstall pto-checks")
    return folder


@functools.cache
def load_reference(name: str = "pto") -> dict[str, Any]:
    """Load ``reference_data/<name>.toml`` as a dict (cached)."""
    path = reference_dir() / f"{name}.toml"
    with path.open("rb") as fh:
        return tomllib.load(fh)


def functional_reference(functional: str, quantity: str) -> dict[str, Any] | None:
    """Reference value of ``quantity`` (e.g. ``"c_over_a"``) for a DFT functional or ``"experiment"``.

    Returns ``{"value", "source", "functional"}`` or ``None`` where that reference has no value.
    """
    refs = load_reference()["references"]
    key = functional.lower()
    if key not in refs or quantity not in refs[key]:
        return None
    entry = refs[key]
    return {"value": float(entry[quantity]), "source": entry["source"], "functional": key}


def tolerance(check: str) -> dict[str, Any]:
    """Tolerance table of a check: ``{"value", "unit", "reasoning", ...}``."""
    return dict(load_reference()["tolerances"][check])
