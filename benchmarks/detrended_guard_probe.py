"""Probe (not the checks' rule): would a slow-mode guard whose fast-noise level is estimated after
removing the window's straight line and parabola stop sub-period sinusoid decisions?

The checks' guard (:func:`pto_checks.statistics.slow_power_ratio`) compares the power at the two
longest periods of the window with ``n sem_acf^2``; a slow mode inside the window inflates that
reference itself.  Here the reference is the residual after the degree-2 Legendre fit, and the
ratio is the largest of the two periodogram bins and the two Legendre components.  For each case
(the calibration's AR(1) + sinusoid windows with the mean on the threshold, AR(1) at n_eff 10, 30,
100 on the threshold and half an interval away) it prints the fraction decided by the checks'
path that this guard would still let through, per limit (inf: the checks as they are).

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/detrended_guard_probe.py 1000

Measured 2026-12-06 (1000 series per case, seed 5): 3-ps windows 0.014 (inf) -> 0.003 (limit 8)
-> 0.001 (limit 4); 4-ps windows 0.003 -> 0.002 -> 0.001; AR(1) n_eff 10 half an interval away
0.132 -> 0.130 -> 0.111.  Not adopted: it does not reach "never" and it would change decisions on
real runs already made.
"""

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import calibrate_statistics as C  # noqa: E402

from pto_checks import statistics as S  # noqa: E402
from pto_checks.decisions import Side, decide_series  # noqa: E402

LIMITS = [4, 8, 12, 16, 25, math.inf]


def ratio_detrended(y: np.ndarray) -> float:
    n = len(y)
    q, _ = np.linalg.qr(np.vander(np.linspace(-1, 1, n), 3, increasing=True))
    c = q[:, 1:].T @ (y - y.mean())
    r = y - y.mean() - q[:, 1:] @ c
    sem_fast = r.std(ddof=1) * math.sqrt(S.inefficiency(r) / n)
    p = np.abs(np.fft.rfft(y - y.mean())[1:3]) ** 2 / n
    return float(max(np.max(c**2), p.max()) / (n * sem_fast**2))


def case(xs: np.ndarray, es: np.ndarray, thr: float) -> dict:
    out = dict.fromkeys(LIMITS, 0)
    for x, e in zip(xs, es, strict=True):
        s = C.run_stats(x, e)
        if decide_series(s, thr, settings=C.SETTINGS).side is Side.UNDECIDED:
            continue
        r = ratio_detrended(x[s.t0:])
        for lim in LIMITS:
            out[lim] += r <= lim
    return {str(k): round(v / len(xs), 4) for k, v in out.items()}


def main(m: int) -> None:
    rng = np.random.default_rng(5)
    for w in (3.0, 4.0, 6.0):
        n = int(w / C.DT_PS)
        t = np.arange(n) * C.DT_PS
        xs = C.ar1(rng, m, n, 10.0) + 2 * np.sin(2 * np.pi * t[None, :] / 4.5 + rng.uniform(0, 2 * np.pi, m)[:, None])
        print("sinusoid", w, "ps:", case(xs, rng.standard_normal((m, n)), 0.0), flush=True)
    for ne in (10, 30, 100):
        n = ne * 10
        xs, es = C.ar1(rng, m, n, 10.0), rng.standard_normal((m, n))
        hw = float(np.median([(d.interval.high - d.interval.low) / 4 for d in
                              (decide_series(C.run_stats(x, e), 0.0, settings=C.SETTINGS)
                               for x, e in zip(xs[:100], es[:100], strict=True))]))
        print("AR(1) n_eff", ne, "on the threshold:", case(xs, es, 0.0), "half an interval away:",
              case(xs, es, -hw), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
