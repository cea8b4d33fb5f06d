"""The results file (``--report DIR`` -> ``DIR/results.json``); schema in the README.

Each pytest process (xdist worker or not) writes its own part file; the controlling process
merges the parts into ``results.json`` at the end of the session.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import sys
from pathlib import Path
from typing import Any

from pto_checks import __version__
from pto_checks.cache import write_json_atomic

SCHEMA_VERSION = 1


class Results:
    """Accumulates per-model specs, measured quantities (with units) and check verdicts."""

    def __init__(self, protocol: dict[str, Any] | None = None):
        self.data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "harness": {
                "name": "pto-checks",
                "version": __version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv),
            },
            "protocol": protocol or {},
            "models": {},
        }

    def model_entry(self, name: str) -> dict[str, Any]:
        return self.data["models"].setdefault(name, {"spec": {}, "quantities": {}, "checks": {}})

    def set_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.model_entry(name)["spec"] = spec

    def quantity(self, model: str, section: str, name: str, value: Any, unit: str,
                 **extra: Any) -> None:
        """Record a measured quantity ``value`` in ``unit`` under ``quantities.<section>.<name>``."""
        q = self.model_entry(model)["quantities"].setdefault(section, {})
        q[name] = {"value": value, "unit": unit, **extra}

    def check(self, model: str, test_id: str, status: str, *, message: str = "",
              verdict: dict[str, Any] | None = None, markers: list[str] | None = None) -> None:
        """Record a check's outcome: ``pass``, ``fail``, ``skip`` or ``error``."""
        entry = self.model_entry(model)["checks"].setdefault(test_id, {})
        entry.update(status=status, message=message, markers=markers or entry.get("markers", []))
        if verdict is not None:
            entry["verdict"] = verdict

    def write(self, path: str | Path) -> None:
        write_json_atomic(path, self.data)


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge results dicts (xdist worker parts) into one; later parts win on conflicts."""
    if not parts:
        return Results().data
    out = json.loads(json.dumps(parts[0]))
    for part in parts[1:]:
        for name, entry in part.get("models", {}).items():
            dst = out["models"].setdefault(name, {"spec": {}, "quantities": {}, "checks": {}})
            if entry.get("spec"):
                dst["spec"] = entry["spec"]
            for section, qs in entry.get("quantities", {}).items():
                dst["quantities"].setdefault(section, {}).update(qs)
            for tid, chk in entry.get("checks", {}).items():
                dst["checks"].setdefault(tid, {}).update(chk)
    return out


def load(path: str | Path) -> dict[str, Any]:
    """Read a results file, checking its schema version."""
    data = json.loads(Path(path).read_text())
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {data.get('schema_version')} != {SCHEMA_VERSION}")
    return data


def annotate_integrator_flips(data: dict[str, Any]) -> dict[str, Any]:
    """Mark NPT verdicts that differ between the study's integrator and MTK.

    A check id ``file::test[mtk]`` is compared with ``file::test`` (Melchionna); each model gets
    ``integrator_artefacts``: the checks whose pass/fail flips, which are integrator artefacts, not
    properties of the model.
    """
    for entry in data.get("models", {}).values():
        checks = entry.get("checks", {})
        flips = []
        for tid, chk in checks.items():
            if not tid.endswith("[mtk]"):
                continue
            base = checks.get(tid[: -len("[mtk]")])
            if base and {base["status"], chk["status"]} == {"pass", "fail"}:
                flips.append({"check": tid[: -len("[mtk]")], "melchionna": base["status"],
                              "mtk": chk["status"]})
        if flips:
            entry["integrator_artefacts"] = flips
    return data


def finite_or_zero(x: Any) -> float:
    """``float(x)``, or 0.0 for None/NaN/non-numbers (missing error bars)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(x) else x


def sweep_quantities(key: str, rows: list[dict[str, Any]], tc: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Comparable quantities of one MD sweep (``key`` e.g. ``npt_melchionna``): Tc, and c/a and Pz
    at the lowest temperature, as ``{name: (value, standard error)}``."""
    out = {}
    if tc.get("tc") is not None:
        out[f"md.{key}.tc"] = (tc["tc"], 0.0)
    if rows:
        r = rows[0]
        out[f"md.{key}.c_over_a@{r['T_K']:.0f}K"] = (r["c_over_a"], finite_or_zero(r.get("c_over_a_err")))
        out[f"md.{key}.Pz@{r['T_K']:.0f}K"] = (r["Pz"], finite_or_zero(r.get("Pz_err")))
    return out


def comparable_quantities(entry: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The quantities of a model's results entry that runs are compared on (nightly report, CI
    gate): ground-state a, c, c/a, dE, the lowest phonon, and each sweep's :func:`sweep_quantities`."""
    q = entry.get("quantities", {})
    out = {f"ground_state.{k}": (v["value"], 0.0) for k, v in q.get("ground_state", {}).items()
           if k in ("a", "c", "c_over_a", "delta_e")}
    if "f_min" in q.get("phonons", {}):
        out["phonons.f_min"] = (q["phonons"]["f_min"]["value"], 0.0)
    for key, sweep in q.get("md", {}).items():
        out.update(sweep_quantities(key, sweep["value"]["rows"], sweep["value"]["tc"]))
    return out


def movement_limit(name: str, err_new: float = 0.0, err_old: float = 0.0) -> float:
    """How far quantity ``name`` may move between runs: max(threshold of reference_data/pto.toml
    [regression], 2 x combined standard error)."""
    from pto_checks.reference import load_reference

    reg = load_reference()["regression"]
    last = name.split(".")[-1].split("@")[0]
    return max(float(reg.get(last, reg["c_over_a"])), 2 * math.hypot(err_new, err_old))
