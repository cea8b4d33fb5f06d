"""The results file (``--report DIR`` -> ``DIR/results.json``); described by the JSON Schema
``pto_checks/schema/results.schema.json`` (shipped in the wheel; :func:`validate`).

Each pytest process (xdist worker or not) writes its own part file; the controlling process
merges the parts, and the results already in ``DIR``, into ``results.json`` at the end of the
session: results accumulate per (model, check) and per (model, quantity), the newest winning.
Every check and quantity names the protocol that produced it (a key of ``protocols``) and when
it was recorded, so a file that holds a ``paper`` static run and a ``smoke`` dynamic run says so.
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

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 files are upgraded on reading (protocol labels filled in)
SCHEMA_FILE = Path(__file__).resolve().parent / "schema" / "results.schema.json"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Results:
    """Accumulates per-model specs, measured quantities (with units) and check verdicts."""

    def __init__(self, protocol: dict[str, Any] | None = None):
        created = _now()
        self.protocol_label = str((protocol or {}).get("name", "unknown"))
        self.data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "harness": {
                "name": "pto-checks",
                "version": __version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "created": created,
                "command": " ".join(sys.argv),
            },
            "protocol": protocol or {},
            "protocols": {self.protocol_label: protocol} if protocol else {},
            "runs": [{"created": created, "command": " ".join(sys.argv), "protocol": self.protocol_label}],
            "models": {},
        }

    def model_entry(self, name: str) -> dict[str, Any]:
        return self.data["models"].setdefault(name, {"spec": {}, "quantities": {}, "checks": {}})

    def set_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.model_entry(name)["spec"] = spec

    def quantity(self, model: str, section: str, name: str, value: Any, unit: str,
                 **extra: Any) -> None:
        """Record a measured quantity ``value`` in ``unit`` under ``quantities.<section>.<name>``
        (with the protocol that produced it and the time)."""
        q = self.model_entry(model)["quantities"].setdefault(section, {})
        q[name] = {"value": value, "unit": unit, **extra, "protocol": self.protocol_label, "recorded": _now()}

    def check(self, model: str, test_id: str, status: str, *, message: str = "",
              verdict: dict[str, Any] | None = None, markers: list[str] | None = None) -> None:
        """Record a check's outcome: ``pass``, ``fail``, ``skip`` or ``error`` (readers must accept
        other strings, e.g. ``inconclusive``)."""
        entry = self.model_entry(model)["checks"].setdefault(test_id, {})
        entry.update(status=status, message=message, markers=markers or entry.get("markers", []),
                     protocol=self.protocol_label, recorded=_now())
        if verdict is not None:
            entry["verdict"] = verdict

    def write(self, path: str | Path) -> None:
        write_json_atomic(path, self.data)


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` in the current layout: every check and quantity labelled with its
    protocol (version 1 files: the file's one protocol) and time."""
    data = json.loads(json.dumps(data))
    proto = data.get("protocol") or {}
    label = str(proto.get("name", "unknown"))
    created = data.get("harness", {}).get("created", "")
    data.setdefault("protocols", {label: proto} if proto else {})
    data.setdefault("runs", [{"created": created, "command": data.get("harness", {}).get("command", ""),
                              "protocol": label}])
    for entry in data.get("models", {}).values():
        for chk in entry.get("checks", {}).values():
            chk.setdefault("protocol", label)
            chk.setdefault("recorded", created)
        for qs in entry.get("quantities", {}).values():
            for q in qs.values():
                if isinstance(q, dict):
                    q.setdefault("protocol", label)
                    q.setdefault("recorded", created)
    data["schema_version"] = SCHEMA_VERSION
    return data


def _relabel(part: dict[str, Any], taken: dict[str, Any]) -> None:
    """Rename the protocols of ``part`` whose label is already used in ``taken`` for a different
    protocol (two ``smoke+custom`` runs with other overrides): ``smoke+custom#2``, ..."""
    renames = {}
    for label, proto in list(part.get("protocols", {}).items()):
        if label in taken and taken[label] != proto:
            n = 2
            while f"{label}#{n}" in taken and taken[f"{label}#{n}"] != proto:
                n += 1
            renames[label] = f"{label}#{n}"
    if not renames:
        return
    part["protocols"] = {renames.get(k, k): v for k, v in part["protocols"].items()}
    for run in part.get("runs", []):
        run["protocol"] = renames.get(run.get("protocol"), run.get("protocol"))
    for entry in part.get("models", {}).values():
        for chk in entry.get("checks", {}).values():
            chk["protocol"] = renames.get(chk.get("protocol"), chk.get("protocol"))
        for qs in entry.get("quantities", {}).values():
            for q in qs.values():
                if isinstance(q, dict):
                    q["protocol"] = renames.get(q.get("protocol"), q.get("protocol"))


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge results dicts into one: xdist worker parts of one run, or the results already in a
    report folder followed by a new run's, or several saved files (``pto-checks report A B``).

    Per model, each check (test id) and each quantity (section, name) is taken from the last
    part that has it, whole (a newer run replaces an older one's verdict, it is never mixed
    with it); the spec from the last part that has one; ``harness`` and ``protocol`` from the
    last part; ``protocols`` and ``runs`` are the union.  A model whose weights fingerprint
    changed (other weights under the same name) keeps nothing of the older results.
    """
    if not parts:
        return Results().data
    out = _upgrade(parts[0])
    for raw in parts[1:]:
        part = _upgrade(raw)
        _relabel(part, out["protocols"])
        out["protocols"].update(part.get("protocols", {}))
        seen = {(r.get("created"), r.get("command")) for r in out["runs"]}
        out["runs"] += [r for r in part.get("runs", []) if (r.get("created"), r.get("command")) not in seen]
        out["harness"] = part.get("harness", out["harness"])
        out["protocol"] = part.get("protocol", out["protocol"])
        for name, entry in part.get("models", {}).items():
            old_fp = out["models"].get(name, {}).get("spec", {}).get("fingerprint")
            new_fp = entry.get("spec", {}).get("fingerprint")
            if old_fp and new_fp and old_fp != new_fp:  # other weights under the same name: start afresh
                out["models"].pop(name)
            dst = out["models"].setdefault(name, {"spec": {}, "quantities": {}, "checks": {}})
            if entry.get("spec"):
                dst["spec"] = entry["spec"]
            for section, qs in entry.get("quantities", {}).items():
                dst["quantities"].setdefault(section, {}).update(qs)
            dst["checks"].update(entry.get("checks", {}))
            if entry.get("environment"):  # set by `pto-checks run` across environments
                dst["environment"] = entry["environment"]
    for entry in out["models"].values():
        entry.pop("integrator_artefacts", None)  # recomputed from the merged checks
    return out


def load(path: str | Path) -> dict[str, Any]:
    """Read a results file (schema version 1 or 2; version 1 is upgraded), checking its version."""
    data = json.loads(Path(path).read_text())
    if data.get("schema_version") not in READABLE_VERSIONS:
        raise ValueError(f"{path}: schema_version {data.get('schema_version')} is not one this pto-checks "
                         f"reads ({', '.join(map(str, READABLE_VERSIONS))}); upgrade pto-checks")
    return _upgrade(data)


def already_there(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """The results a report folder already holds (``path``: its results.json), to merge a new run
    into: (data, None), or (None, None) when there is none.  An unreadable file is moved aside as
    ``results.json.unreadable-<UTC time>`` (never overwritten) and (None, warning) returned."""
    path = Path(path)
    if not path.is_file():
        return None, None
    try:
        return load(path), None
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        import os

        aside = path.with_name(f"{path.name}.unreadable-{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}")
        os.replace(path, aside)
        return None, f"{path}: {exc}; kept as {aside}, not merged"


def schema() -> dict[str, Any]:
    """The JSON Schema of results.json (draft 2020-12)."""
    return json.loads(SCHEMA_FILE.read_text())


def validate(data: dict[str, Any]) -> None:
    """Validate a results dict against :func:`schema`; raises ``jsonschema.ValidationError``
    (needs the ``jsonschema`` package: ``pip install "pto-checks[test]"``)."""
    import jsonschema

    jsonschema.validate(data, schema(), cls=jsonschema.Draft202012Validator)


def protocol_label(item: dict[str, Any] | None, data: dict[str, Any]) -> str:
    """The protocol label of a check or quantity entry (the file's protocol if it has none)."""
    if item and item.get("protocol"):
        return str(item["protocol"])
    return str(data.get("protocol", {}).get("name", "unknown"))


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
        else:
            entry.pop("integrator_artefacts", None)
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
    at the lowest temperature, as ``{name: (value, standard error)}``.  Tc is the bracket of the
    decided phases (:func:`pto_checks.phase.sweep_tc`); its error is the bracket's half-width."""
    out = {}
    if tc.get("tc") is not None:
        out[f"md.{key}.tc"] = (tc["tc"], finite_or_zero(tc.get("resolution")))
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
