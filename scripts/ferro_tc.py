"""Measure the transition of the synthetic ferroelectric model (``synthetic:ferro``) with long runs.

Each temperature is one MD run through the harness's ASE engine (``pto_checks.md.ASEEngine``,
the protocol's integrators: NPT = ASE's Melchionna NPT with the study's ttime and pfactor, NVT =
Langevin), started afresh from the polar cell (heating).  The statistics and phase decisions are
the harness's own (:func:`pto_checks.analysis.summarize_run`, :func:`pto_checks.verdicts.phase_decision`);
Tc is bracketed between the highest temperature decided polar and the first above it decided
cubic (:func:`pto_checks.verdicts.tc_bracket`).

    python scripts/ferro_tc.py --steps 20000 --temperatures 500,550,600,625,650,675,700,750,800 \
        --out benchmarks/ferro_tc_npt.json

Writes a JSON with one row per temperature (c/a, |P|, Pz with standard errors, t0, n_eff, phase,
steps/s) and the bracket, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_one(args: tuple[str, float, int, int, int, str | None, dict]) -> dict:
    ensemble, temperature, supercell, steps, seed, samples_dir, params = args
    from pto_checks.md import ASEEngine, MDTask
    from pto_checks.models.ferro import FerroParameters, make
    from pto_checks.protocols import PROTOCOLS

    p = PROTOCOLS["paper"].md
    a, c = (p.start_a, p.start_c) if ensemble == "npt" else (p.nvt_a, p.nvt_c)
    task = MDTask(ensemble, "melchionna" if ensemble == "npt" else "langevin", float(temperature), supercell,
                  a, c, steps, p.timestep_fs, seed, p.ttime_fs, p.pfactor_ase, p.mtk_tdamp_fs, p.mtk_pdamp_fs,
                  p.friction_per_fs, p.sample_every, 10**9, max(steps // 4, p.sample_every))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        res = ASEEngine().run(task, make(FerroParameters(**params)), Path(d) / "run")
    wall = time.perf_counter() - t0
    if samples_dir:  # keep the time series: the analysis can be redone without new MD
        Path(samples_dir).mkdir(parents=True, exist_ok=True)
        (Path(samples_dir) / f"{ensemble}_{temperature:.0f}K_seed{seed}.json").write_text(json.dumps(res["samples"]))
    return analyse(ensemble, temperature, steps, res["samples"], res["failure"], wall, supercell)


def analyse(ensemble: str, temperature: float, steps: int, samples: list, failure, wall: float,
            supercell: int = 3) -> dict:
    """Statistics and phase decision of one temperature (the harness's own functions)."""
    from pto_checks import analysis, verdicts
    from pto_checks.protocols import PROTOCOLS

    p = PROTOCOLS["paper"].md
    row = analysis.summarize_run(samples, failure, temperature, p.production_fraction)
    row["task"] = {"supercell": supercell}  # the polar order's disordered baseline depends on the cell size
    phase, _, text = verdicts.phase_decision(row, ensemble)
    st = row["stats"]["series"]
    import numpy as np

    lens = np.array([[x["a"], x["b"], x["c"]] for x in samples])
    half = len(samples) // 2
    srt = np.sort(lens[half:], axis=1)
    out = {"frame_P_abs": float(np.mean(np.linalg.norm([[x["Px"], x["Py"], x["Pz"]] for x in samples[half:]], axis=1))),
           "frame_tetragonality": float(np.mean(srt[:, 2] / srt[:, :2].mean(axis=1)))}
    out |= {"T_K": temperature, "phase": phase, "decision": text, "steps": steps, "wall_s": wall,
           "steps_per_s": steps / wall, "t0_ps": row["t0_ps"], "production_ps": row["production_ps"],
           "failure": failure}
    for k in ("c_over_a", "P_abs", "Pz", "lindemann"):
        out[k] = {"mean": st[k]["mean"] if k != "P_abs" else row["P_abs_mean"],
                  "sem": row.get(f"{k}_sem", st[k]["sem"]), "n_eff": row.get(f"{k}_n_eff", st[k]["n_eff"])}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ensemble", default="npt", choices=("npt", "nvt"))
    ap.add_argument("--temperatures", default="500,550,600,625,650,675,700,750,800")
    ap.add_argument("--supercell", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--samples-dir", default=None, help="keep each run's samples here (JSON)")
    ap.add_argument("--param", action="append", default=[], help="FerroParameters override, e.g. J_eV_per_A2=0.3")
    ap.add_argument("--reanalyse", action="store_true", help="reanalyse the samples in --samples-dir, no MD")
    a = ap.parse_args(argv)
    temps = [float(t) for t in a.temperatures.split(",")]
    params = {k: float(v) for k, v in (x.split("=") for x in a.param)}
    jobs = [(a.ensemble, t, a.supercell, a.steps, a.seed, a.samples_dir, params) for t in temps]
    t0 = time.perf_counter()
    if a.reanalyse:
        rows = [analyse(a.ensemble, t, a.steps, json.loads(
            (Path(a.samples_dir) / f"{a.ensemble}_{t:.0f}K_seed{a.seed}.json").read_text()), None, float("nan"),
            a.supercell)
            for t in temps]
    else:
        with ProcessPoolExecutor(a.jobs) as pool:
            rows = list(pool.map(run_one, jobs))
    from pto_checks import verdicts

    br = verdicts.tc_bracket(temps, [r["phase"] for r in rows])
    print(f"{a.ensemble.upper()} {a.supercell}^3, {a.steps} steps of 2 fs per temperature, seed {a.seed}")
    print("   T (K)   c/a (+- sem)          |P| C/m2 (+- sem)   t0 ps  n_eff(c/a)  steps/s  phase"
          "      per-frame |P|  tetragonality (2nd half)")
    for r in rows:
        print(f"  {r['T_K']:6.0f}  {r['c_over_a']['mean']:.4f} +- {r['c_over_a']['sem']:.4f}   "
              f"{r['P_abs']['mean']:.3f} +- {r['P_abs']['sem']:.3f}        {r['t0_ps']:5.1f}  "
              f"{r['c_over_a']['n_eff']:9.1f}  {r['steps_per_s']:7.0f}  {str(r['phase']):10s} "
              f"{r['frame_P_abs']:.3f}          {r['frame_tetragonality']:.4f}")
    print(f"Tc bracket: {br}  (total {time.perf_counter() - t0:.0f} s)")
    if a.out:
        Path(a.out).write_text(json.dumps({"ensemble": a.ensemble, "supercell": a.supercell, "steps": a.steps,
                                           "seed": a.seed, "parameters": params, "rows": rows, "tc_bracket": br,
                                           "command": "python scripts/ferro_tc.py " + " ".join(argv or [])},
                                          indent=1, default=str))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
