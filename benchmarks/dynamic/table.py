"""The README's table of decided finite-temperature verdicts, from the results.json files kept here.

    python benchmarks/dynamic/table.py benchmarks/dynamic/*/results.json
    python benchmarks/dynamic/table.py --temperatures benchmarks/dynamic/*/results.json

One row per model: the NPT outcome class of the whole heating sweep, Tc on heating and on cooling
(the bracket of the first polar-to-cubic step, each end decided at the sweep's level), the NVT
bracket (where Pz is lost at the experimental lattice), each dynamic check's outcome, and the
study's finding for that model (``pto_checks/reference_data/pto.toml [[study.models]]``).  Reads
only results.json (no MD), so it is what the report and the verdicts recorded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pto_checks.reference import load_reference

CHECKS = [("test_npt_no_melting_or_instability", "NPT stable"), ("test_tetragonal_at_300K", "tetragonal 300 K"),
          ("test_cubic_above_tc", "cubic above Tc"), ("test_no_supertetragonal_phase", "no supertetragonal"),
          ("test_tc_vs_experiment", "Tc vs experiment"), ("test_nvt_no_melting_or_instability", "NVT stable"),
          ("test_polar_at_300K", "polar 300 K"), ("test_polarization_vanishes_above_tc", "Pz vanishes")]


def _bracket(tc: dict[str, Any] | None) -> str:
    """``low-high K (status)`` of one branch's Tc record."""
    if not tc:
        return "not run"
    lo, hi = (tc.get("bracket_K") or [None, None])[:2]
    status = tc.get("status") or ""
    if lo is None or hi is None:
        return status or "none"
    return f"{lo:.0f}-{hi:.0f} K" + (f" ({status})" if status and status != "bracketed" else "")


def _sweep(md: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next((q.get("value") or {} for k, q in sorted(md.items()) if k.startswith(prefix)), {})


def rows(paths: list[Path]) -> list[str]:
    study = {m.get("registry"): m for m in load_reference()["study"].get("models", []) if m.get("registry")}
    out = ["| model | protocol | NPT class | Tc heating | Tc cooling | NVT: Pz lost | "
           + " | ".join(label for _, label in CHECKS) + " | the study |",
           "|" + "---|" * (7 + len(CHECKS))]
    for path in paths:
        data = json.loads(Path(path).read_text())
        for name, entry in data.get("models", {}).items():
            md = entry.get("quantities", {}).get("md", {})
            npt, nvt = _sweep(md, "npt_"), _sweep(md, "nvt_")
            cls = (npt.get("outcome_class") or {}).get("class", "no NPT sweep")
            checks = entry.get("checks", {})
            status = []
            for test, _ in CHECKS:
                rec = next((c for t, c in checks.items() if t.endswith("::" + test)), None)
                status.append(rec["status"] if rec else "not run")
            protocols = sorted({str(q.get("protocol", "")) for q in md.values()})
            finding = study.get(name, {}).get("finding", "not in the study")
            tc_npt, tc_nvt = npt.get("tc") or {}, nvt.get("tc") or {}
            out.append(f"| {name} | {', '.join(protocols)} | {cls} | {_bracket(tc_npt.get('heating'))} | "
                       f"{_bracket(tc_npt.get('cooling'))} | {_bracket(tc_nvt.get('heating'))} | "
                       + " | ".join(status) + f" | {finding} |")
    return out


def _pm(row: dict[str, Any], key: str, digits: int = 3) -> str:
    v, e = row.get(key), row.get(f"{key}_err")
    if not isinstance(v, (int, float)):
        return "-"
    return f"{v:.{digits}f}" + (f" ± {e:.{digits}f}" if isinstance(e, (int, float)) else "")


def temperature_rows(paths: list[Path]) -> list[str]:
    """Per model, sweep and temperature: the length reached, the phase the one phase rule gave,
    the deciding observables (mean ± standard error, and n_eff: the intervals behind the phases are
    Student-t at the sweep's per-look level, printed in each row's phase_text)."""
    out = ["| model | sweep | T (K) | branch | ps reached | phase | c/a | polar order | per-frame pol. (C/m²) | "
           "Lindemann | n_eff (c/a, pol.) |", "|" + "---|" * 11]
    for path in paths:
        data = json.loads(Path(path).read_text())
        for name, entry in data.get("models", {}).items():
            for sweep, q in sorted(entry.get("quantities", {}).get("md", {}).items()):
                for r in (q.get("value") or {}).get("rows", []):
                    nvt = sweep.startswith("nvt")
                    pol = "Pz_frame_abs" if nvt else "P_frame_abs"
                    ps = r.get("steps_reached", 0) * (r.get("task") or {}).get("timestep_fs", 2.0) / 1000.0
                    series = r.get("stats", {}).get("series", {})
                    n_ca = (series.get("c_over_a") or {}).get("n_eff", float("nan"))
                    n_p = (series.get("Pz_frame_abs" if nvt else "P_alignment") or {}).get("n_eff", float("nan"))
                    out.append(f"| {name} | {sweep} | {r['T_K']:.0f} | {r.get('branch', '')} | {ps:.1f} | "
                               f"{r.get('phase')} | {'-' if nvt else _pm(r, 'c_over_a')} | "
                               f"{'-' if nvt else _pm(r, 'P_alignment')} | {_pm(r, pol)} | {_pm(r, 'lindemann')} | "
                               f"{'-' if nvt else f'{n_ca:.1f}'}, {n_p:.1f} |")
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    per_t = "--temperatures" in args
    files = [Path(p) for p in args if p != "--temperatures"]
    print("\n".join(temperature_rows(files) if per_t else rows(files)))
