"""How the slow-mode guard's limit (:data:`pto_checks.statistics.SLOW_POWER_LIMIT`), the crest
rule (:data:`pto_checks.statistics.CREST_Z_LIMIT`) and the equilibrated start's tolerance
(:data:`pto_checks.statistics.EQUILIBRATION_TOLERANCE`) trade sub-period decisions against
ordinary ones.

Series as in ``benchmarks/calibrate_statistics.py``: AR(1) (g = 10 samples of 0.02 ps) plus a
sinusoid of period 4.5 ps (amplitude 2 sigma, random phase) in 3-ps and 4-ps windows with the true
mean on the threshold (every decision wrong); AR(1) at n_eff 10, 30, 100 half an interval away
from the threshold (every decision right).  Each series goes through the checks' path
(:func:`pto_checks.statistics.run_statistics` with the start detected on an independent potential
energy, :func:`pto_checks.decisions.decide_series`) with the guard and the crest rule off; each
column then applies :func:`pto_checks.statistics.slow_mode_ratio` (limit L) and, in the "+ crest"
columns, the one-sided :func:`pto_checks.statistics.crest_z` rule to the same decided windows, so
the columns compare identical series.  (With the guard off no window goes to the drift rule; the
calibration measures the whole path.)  Rows for the start taken at pymbar's argmax (tolerance 0) and at the
tolerance the checks use.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/slow_guard_scan.py --n 4000

Writes ``benchmarks/slow_guard_scan.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import calibrate_statistics as C  # noqa: E402

from pto_checks import analysis, statistics  # noqa: E402
from pto_checks.decisions import Side, decide_series  # noqa: E402

LIMITS = (math.inf, 8.0, 4.0, 2.0)
CREST = (math.inf, 1.5, 1.0)
HERE = Path(__file__).parent


def decided_ratios(xs: np.ndarray, es: np.ndarray, thr: float, tolerance: float) -> list[tuple[float, float]]:
    """(slow_mode_ratio, crest z toward the decided side) of every window the guard-less path
    decides (one entry per decision; the crest z is negative for a crest under an "above")."""
    out = []
    for x, e in zip(xs, es, strict=True):
        t0 = statistics.equilibration_start(e, tolerance=tolerance)
        s = statistics.run_statistics({"q": x, "epot_eV": e}, {}, C.DT_PS, analysis.EQUILIBRATION_FROM, t0=t0)["q"]
        d = decide_series(s, thr, settings=C.SETTINGS)
        if d.side is not Side.UNDECIDED:
            ratio, crest = statistics._slow_components(x[s.t0:])
            out.append((ratio, crest if d.side is Side.ABOVE else -crest))
    return out


def _label(lim: float, zc: float) -> str:
    head = "off" if math.isinf(lim) else f"{lim:g}"
    return head if math.isinf(zc) else f"{head} + crest {zc:g}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=41)
    a = ap.parse_args(argv)
    statistics.SLOW_POWER_LIMIT = math.inf  # the guard is applied below, per limit, on the same windows
    statistics.CREST_Z_LIMIT = math.inf
    rng = np.random.default_rng(a.seed)
    m = a.n
    cases = []
    for w in (3.0, 4.0):
        n = int(w / C.DT_PS)
        t = np.arange(n) * C.DT_PS
        xs = C.ar1(rng, m, n, 10.0) + 2.0 * np.sin(2 * np.pi * t[None, :] / 4.5 + rng.uniform(0, 2 * np.pi, m)[:, None])
        es = rng.standard_normal((m, n))
        for tol in (0.0, statistics.EQUILIBRATION_TOLERANCE):
            name = f"sinusoid {w:g} ps, mean on the threshold (wrong), start tolerance {tol:g}"
            cases.append((name, xs, es, 0.0, tol))
    for ne in (10, 30, 100):
        n = ne * 10
        xs, es = C.ar1(rng, m, n, 10.0), rng.standard_normal((m, n))
        hw = float(np.median([(d.interval.high - d.interval.low) / 4 for d in
                              (decide_series(C.run_stats(x, e), 0.0, settings=C.SETTINGS)
                               for x, e in zip(xs[:200], es[:200], strict=True))]))
        cases.append((f"AR(1) n_eff {ne}, half an interval away (right), start tolerance "
                      f"{statistics.EQUILIBRATION_TOLERANCE:g}", xs, es, -hw, statistics.EQUILIBRATION_TOLERANCE))
    rows = []
    t_start = time.time()
    for name, xs, es, thr, tol in cases:
        r = np.array(decided_ratios(xs, es, thr, tol)).reshape(-1, 2)
        row = {"case": name, "series": m,
               "decided": {_label(lim, zc): float(np.sum((r[:, 0] <= lim) & (r[:, 1] >= -zc)) / m)
                           for zc in CREST for lim in LIMITS}}
        print(json.dumps(row), flush=True)
        rows.append(row)
    seconds = round(time.time() - t_start)
    out = {"rows": rows, "seconds": seconds, "seed": a.seed}
    (HERE / "slow_guard_scan.json").write_text(json.dumps(out, indent=1) + "\n")
    head = [_label(lim, zc) for zc in CREST for lim in LIMITS]
    md = [f"# Slow-mode guard: limit scan\n\nCommand: `OMP_NUM_THREADS=1 PYTHONPATH=. python "
          f"benchmarks/slow_guard_scan.py --n {m} --seed {a.seed}` ({seconds} s).\n\n"
          "Decided fraction per `SLOW_POWER_LIMIT` (off: no guard), same series per row; "
          "\"+ crest z\": with the one-sided crest rule at z.\n",
          "| case | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for row in rows:
        md.append(f"| {row['case']} | " + " | ".join(f"{row['decided'][h]:.4f}" for h in head) + " |")
    (HERE / "slow_guard_scan.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
