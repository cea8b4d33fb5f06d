"""How the limit of the slope-and-crest guard (:data:`pto_checks.statistics.TREND_POWER_LIMIT`)
trades windows shorter than one period of a slow oscillation against ordinary runs.

Each series goes once through the checks' path (``run_statistics`` with the start detected on an
independent potential energy) with the guard off; each limit then sets ``halves_agree`` from the
series' :func:`pto_checks.statistics.trend_power_ratio` (together with the periodogram guard) and
decides through :func:`pto_checks.decisions.decide_series`, exactly as the checks would at that limit.

Cases (``--n`` series each): AR(1) (g = 10 samples of 0.02 ps) plus a sinusoid of period 4.5 ps
(amplitude 2 sigma, random phase) in 3 ps and 4 ps windows with the true mean on the threshold
(every decision wrong); AR(1) alone at n_eff 10, 20, 30, 100: decisions with the mean on the
threshold (wrong) and half a median interval away (right).

Writes ``benchmarks/trend_guard_scan.json`` and ``.md``.
Run: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/trend_guard_scan.py [--n 2000]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from pto_checks import statistics
from pto_checks.decisions import Side, decide_series

HERE = Path(__file__).parent
LIMITS = (math.inf, 8.0, 4.0, 3.0, 2.0, 1.0)


def _cal():
    spec = importlib.util.spec_from_file_location("calibrate_statistics", HERE / "calibrate_statistics.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _with_ratios(cal, xs: np.ndarray, es: np.ndarray) -> list[tuple[statistics.SeriesStats, float]]:
    """(statistics with the slope-and-crest guard off, the window's trend power ratio) per series."""
    out = []
    for x, e in zip(xs, es, strict=True):
        s = cal.run_stats(x, e)
        out.append((s, statistics.trend_power_ratio(x[s.t0:], s.sem_acf)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--out", default=str(HERE / "trend_guard_scan"))
    a = ap.parse_args(argv)
    cal = _cal()
    rng = np.random.default_rng(a.seed)
    t_start = time.time()
    statistics.TREND_POWER_LIMIT = math.inf  # each limit is applied below, on the same statistics
    cases: dict[str, tuple[list, float]] = {}
    for w in (3.0, 4.0):
        n = int(w / cal.DT_PS)
        t = np.arange(n) * cal.DT_PS
        xs = cal.ar1(rng, a.n, n, 10.0) + 2.0 * np.sin(2 * np.pi * t / 4.5 + rng.uniform(0, 2 * np.pi, (a.n, 1)))
        es = rng.standard_normal(xs.shape)
        cases[f"sinusoid {w:g} ps"] = (_with_ratios(cal, xs, es), 0.0)
    for n_eff in (10, 20, 30, 100):
        xs = cal.ar1(rng, a.n, n_eff * 10, 10.0)
        es = rng.standard_normal(xs.shape)
        st = _with_ratios(cal, xs, es)
        half = float(np.median([d.interval.high - d.interval.low for d in
                                (decide_series(s, 0.0, settings=cal.SETTINGS) for s, _ in st[:200])])) / 4.0
        cases[f"AR(1) n_eff {n_eff}"] = (st, half)
    rows = []
    for name, (st, half) in cases.items():
        row = {"case": name, "series": len(st)}
        for lim in LIMITS:
            ok = [dataclasses.replace(s, halves_agree=s.halves_agree and r <= lim) for s, r in st]
            at = [decide_series(s, 0.0, settings=cal.SETTINGS) for s in ok]
            rec = {"decided_at_threshold": float(np.mean([d.side is not Side.UNDECIDED for d in at]))}
            if half:
                away = [decide_series(s, -half, settings=cal.SETTINGS) for s in ok]
                rec["decided_half_interval_away"] = float(np.mean([d.side is Side.ABOVE for d in away]))
                rec["coverage"] = float(np.mean([d.interval.low <= 0 <= d.interval.high for d in at]))
            row[f"{lim:g}"] = rec
        rows.append(row)
        print(json.dumps(row), flush=True)
    res = {"command": "OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/trend_guard_scan.py "
                      + " ".join(argv if argv is not None else sys.argv[1:]),
           "seconds": time.time() - t_start, "rows": rows}
    Path(a.out + ".json").write_text(json.dumps(res, indent=1))
    lines = ["# Slope-and-crest guard: limit scan", "", f"Command: `{res['command']}` ({res['seconds']:.0f} s).", "",
             "Decided fraction per limit of `TREND_POWER_LIMIT` (inf: guard off).  Sinusoid windows and AR(1) "
             "with the mean on the threshold: every decision is wrong; AR(1) half an interval away: every "
             "decision is right.", "",
             "| case | " + " | ".join(f"{lim:g}" for lim in LIMITS) + " |", "|---|" + "---|" * len(LIMITS)]
    for r in rows:
        lines.append(f"| {r['case']}, mean on the threshold | "
                     + " | ".join(f"{r[f'{lim:g}']['decided_at_threshold']:.4f}" for lim in LIMITS) + " |")
        if "decided_half_interval_away" in r["inf"]:
            lines.append(f"| {r['case']}, half an interval away | "
                         + " | ".join(f"{r[f'{lim:g}']['decided_half_interval_away']:.4f}" for lim in LIMITS) + " |")
    Path(a.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
