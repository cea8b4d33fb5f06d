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
        other strings, e.g. ``inconclusive``); with a verdict, the status must be one its outcome
        allows (:data:`STATUS_WITH_OUTCOME`; readers refuse a file where they disagree)."""
        entry = self.model_entry(model)["checks"].setdefault(test_id, {})
        entry.update(status=status, message=message, markers=markers or entry.get("markers", []),
                     protocol=self.protocol_label, recorded=_now())
        if verdict is not None:
            entry["verdict"] = verdict

    def write(self, path: str | Path) -> None:
        write_results(path, self.data)


def strict(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, inf) as None, so that the file is strict JSON (a
    bare ``NaN`` is not JSON, and a NaN read back compares as "unchanged" with anything)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return strict(obj.item())
        if isinstance(obj, np.ndarray):
            return strict(obj.tolist())
    except ImportError:  # pragma: no cover
        pass
    return obj


def write_results(path: str | Path, data: dict[str, Any]) -> None:
    """Write a results file (results.json, a baseline) atomically, as strict JSON (:func:`strict`),
    readable by others as the umask allows (like the report's figures)."""
    write_json_atomic(path, strict(data), shared=True)


class ResultsError(ValueError):
    """A results file (or baseline) that cannot be trusted as it is: one line naming the file and
    the field."""


#: statuses a check may carry next to a verdict whose outcome is the key: the outcome itself, or
#: ``error`` (the check's teardown failed after its verdict)
STATUS_WITH_OUTCOME = {"pass": {"pass", "error"}, "fail": {"fail", "error"},
                       "inconclusive": {"inconclusive", "error"}}


def status_of(chk: dict[str, Any]) -> str:
    """The status of a check entry as its verdict decides it (the recorded ``status`` only where
    there is no verdict: a skip, an error before the verdict).  Never the file's word alone."""
    verdict = chk.get("verdict")
    if isinstance(verdict, dict) and verdict.get("outcome") in STATUS_WITH_OUTCOME:
        return "error" if chk.get("status") == "error" else str(verdict["outcome"])
    return str(chk.get("status"))


def check_integrity(data: Any, source: str | Path) -> None:
    """Raise :class:`ResultsError` (one line: ``source``, the field, what is wrong) unless ``data``
    is a results dict whose every check is an object with a string ``status`` and ``message`` and,
    where it has a verdict, a status that the verdict's outcome allows (:data:`STATUS_WITH_OUTCOME`:
    the status is recomputed from the verdict, never trusted)."""
    def bad(where: str, what: str) -> ResultsError:
        return ResultsError(f"{source}: {where}: {what}")

    if not isinstance(data, dict):
        raise bad("top level", "not a JSON object")
    models = data.get("models")
    if not isinstance(models, dict):
        raise bad("models", f"{type(models).__name__}, not an object of models")
    for name, entry in models.items():
        if not isinstance(entry, dict):
            raise bad(f"models.{name}", f"{type(entry).__name__}, not an object")
        checks = entry.get("checks", {})
        if not isinstance(checks, dict):
            raise bad(f"models.{name}.checks", f"{type(checks).__name__}, not an object")
        if not isinstance(entry.get("quantities", {}), dict):
            raise bad(f"models.{name}.quantities", "not an object")
        for tid, chk in checks.items():
            where = f"models.{name}.checks.{tid}"
            if not isinstance(chk, dict):
                raise bad(where, f"{type(chk).__name__} {str(chk)[:40]!r}, not a check object")
            if not isinstance(chk.get("status"), str):
                raise bad(f"{where}.status", "missing or not a string" if "status" not in chk else
                          f"{chk['status']!r} is not a string")
            if not isinstance(chk.get("message", ""), str):
                raise bad(f"{where}.message", f"{chk['message']!r} is not a string")
            verdict = chk.get("verdict")
            if verdict is None:
                continue
            if not isinstance(verdict, dict) or verdict.get("outcome") not in STATUS_WITH_OUTCOME:
                raise bad(f"{where}.verdict", "not a verdict object with an outcome of pass, fail or inconclusive")
            outcome = verdict["outcome"]
            if verdict.get("status", outcome) != outcome or verdict.get("passed", outcome == "pass") != (
                    outcome == "pass"):
                raise bad(f"{where}.verdict", f"outcome {outcome!r} disagrees with its own status/passed fields")
            if chk["status"] not in STATUS_WITH_OUTCOME[outcome]:
                raise bad(f"{where}.status", f"{chk['status']!r}, but its verdict's outcome is {outcome!r} "
                                             "(the status is derived from the verdict: the file was edited)")


def non_finite_quantities(data: dict[str, Any]) -> list[str]:
    """The comparable quantities (:func:`comparable_quantities`: what a baseline is compared on)
    of ``data`` that are not finite numbers, as ``models.<name>: <quantity> = <value>``."""
    out = []
    for name, entry in data.get("models", {}).items():
        for k, (v, _) in comparable_quantities(entry).items():
            if not is_finite_number(v):
                out.append(f"models.{name}: {k} = {v!r}")
    return out


def is_finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


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
    """Read a results file (schema version 1 or 2; version 1 is upgraded), checking its version and
    every check (:func:`check_integrity`; a :class:`ResultsError`, a ``ValueError``, otherwise)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: top level: not a JSON object")
    check_integrity(data, path)
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

        from pto_checks.safe_files import KEEP_NEWEST, prune

        aside = path.with_name(f"{path.name}.unreadable-{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}")
        os.replace(path, aside)
        prune(path.parent, f"{path.name}.unreadable-*", KEEP_NEWEST)
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
            if base and {status_of(base), status_of(chk)} == {"pass", "fail"}:
                flips.append({"check": tid[: -len("[mtk]")], "melchionna": status_of(base),
                              "mtk": status_of(chk)})
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


def sweep_quantities(key: str, rows: list[dict[str, Any]], tc: dict[str, Any]) -> dict[str, tuple[Any, float]]:
    """Comparable quantities of one MD sweep (``key`` e.g. ``npt_melchionna``): Tc, and c/a and Pz
    at the lowest temperature, as ``{name: (value, standard error)}`` (values as recorded: a
    reader checks they are finite numbers)."""
    out: dict[str, tuple[Any, float]] = {}
    if isinstance(tc, dict) and tc.get("tc") is not None:
        out[f"md.{key}.tc"] = (tc["tc"], 0.0)
    if rows and isinstance(rows, list) and isinstance(rows[0], dict):
        r = rows[0]
        t = r.get("T_K")
        at = f"{t:.0f}K" if is_finite_number(t) else f"{t}K"
        out[f"md.{key}.c_over_a@{at}"] = (r.get("c_over_a"), finite_or_zero(r.get("c_over_a_err")))
        out[f"md.{key}.Pz@{at}"] = (r.get("Pz"), finite_or_zero(r.get("Pz_err")))
    return out


def _value(q: Any) -> Any:
    return q.get("value") if isinstance(q, dict) else None


def comparable_quantities(entry: dict[str, Any]) -> dict[str, tuple[Any, float]]:
    """The quantities of a model's results entry that runs are compared on (nightly report, CI
    gate): ground-state a, c, c/a, dE, the lowest phonon, and each sweep's :func:`sweep_quantities`.
    Values as recorded (None, NaN or a string where the file holds one: readers check)."""
    q = entry.get("quantities", {}) if isinstance(entry, dict) else {}
    gs = q.get("ground_state", {}) if isinstance(q.get("ground_state"), dict) else {}
    out = {f"ground_state.{k}": (_value(v), 0.0) for k, v in gs.items() if k in ("a", "c", "c_over_a", "delta_e")}
    ph = q.get("phonons", {}) if isinstance(q.get("phonons"), dict) else {}
    if "f_min" in ph:
        out["phonons.f_min"] = (_value(ph["f_min"]), 0.0)
    md = q.get("md", {}) if isinstance(q.get("md"), dict) else {}
    for key, sweep in md.items():
        value = _value(sweep) or {}
        if isinstance(value, dict):
            out.update(sweep_quantities(key, value.get("rows") or [], value.get("tc") or {}))
    return out


def movement_limit(name: str, err_new: float = 0.0, err_old: float = 0.0) -> float:
    """How far quantity ``name`` may move between runs: max(threshold of reference_data/pto.toml
    [regression], 2 x combined standard error)."""
    from pto_checks.reference import load_reference

    reg = load_reference()["regression"]
    last = name.split(".")[-1].split("@")[0]
    return max(float(reg.get(last, reg["c_over_a"])), 2 * math.hypot(err_new, err_old))
