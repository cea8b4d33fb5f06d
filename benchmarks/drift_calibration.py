"""Calibration of the drift rule (pto_checks.drift, pto_checks.decisions): how often a run that has
not equilibrated is decided, and how often on the wrong side, on simulated series whose answer is
known.

Each simulated run has ``n`` samples ``dt`` ps apart.  A *driver* series (the one the equilibration
start is detected on, as c/a or the energy in a real run) drifts so that the start falls in the
second half; the *decided* series is either the driver itself or a stationary series sharing its
start (as the Lindemann ratio shares the cell's).  Families (L = run length):

* ``relax``: x = mu + A exp(-t / tau) + AR(1) noise, tau/L in {0.1, 0.3, 1}; the answer is the
  side of mu (the limit);
* ``slow_relax``: the same with tau/L = 3 (beyond the rule's horizon: reported, not claimed);
* ``oscillation``: x = mu + B sin(2 pi t / P + phase) + AR(1), P/L in {0.5, 1, 2}; answer: side of mu;
* ``shared``: a stationary AR(1) series around mu decided while another series drifts.

Thresholds are placed at mu + k * A for k in a grid on both sides (A the drift amplitude), so
some lie between the data and the answer (where the drift could cross) and some far away.  Every
run goes through the public path: ``statistics.run_statistics`` -> ``verdicts.row_decision``.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/drift_calibration.py [--runs 400] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pto_checks import statistics  # noqa: E402
from pto_checks.decisions import Side  # noqa: E402
from pto_checks.verdicts import row_decision  # noqa: E402

THRESHOLD_STEPS = (-3.0, -2.0, -1.5, -1.0, -0.6, -0.3, 0.3, 0.6, 1.0, 1.5, 2.0, 3.0)


def ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    e = rng.normal(0.0, sigma * np.sqrt(1 - phi**2), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, sigma)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


def simulate(family: str, rng: np.random.Generator, n: int = 500, dt: float = 0.02, phi: float = 0.8,
             sigma: float = 0.1, amplitude: float = 1.0, scale: float = 1.0):
    """(series, equilibration_from, decided name, mu, amplitude) of one simulated run."""
    t = np.arange(n) * dt
    length = n * dt
    mu = 0.0
    sign = rng.choice((-1.0, 1.0))
    if family in ("relax", "slow_relax"):
        tau = scale * length
        x = mu + sign * amplitude * np.exp(-t / tau) + ar1(rng, n, phi, sigma)
        return {"x": x}, ("x",), "x", mu, amplitude
    if family == "oscillation":
        period = scale * length
        x = mu + amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)) + ar1(rng, n, phi, sigma)
        return {"x": x}, ("x",), "x", mu, amplitude
    if family == "shared":
        driver = sign * np.exp(-t / length) + ar1(rng, n, phi, sigma)
        x = mu + ar1(rng, n, phi, sigma)
        return {"driver": driver, "x": x}, ("driver",), "x", mu, sigma
    raise ValueError(family)


def run_case(family: str, scale: float, runs: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    unequilibrated = decided = wrong = trials = 0
    for _ in range(runs):
        series, eq_from, name, mu, amp = simulate(family, rng, scale=scale)
        dt = 0.02
        rs = statistics.run_statistics(series, {}, dt, eq_from)
        row = {"T_K": 300.0, "stats": rs.to_dict()}
        if rs.t0 <= 0.5 * rs.n:
            continue  # equilibrated by the ordinary rule: not what this calibrates
        unequilibrated += 1
        for k in THRESHOLD_STEPS:
            thr = mu + k * amp
            d = row_decision(row, name, thr)
            trials += 1
            if d.side is Side.UNDECIDED:
                continue
            decided += 1
            truth = Side.ABOVE if mu > thr else Side.BELOW
            wrong += d.side is not truth
    return {"family": family, "scale": scale, "runs": runs, "not_equilibrated": unequilibrated,
            "comparisons": trials, "decided": decided, "wrong": wrong,
            "decided_fraction": decided / trials if trials else float("nan"),
            "wrong_fraction_of_comparisons": wrong / trials if trials else float("nan"),
            "wrong_fraction_of_decided": wrong / decided if decided else 0.0}


CASES = [("relax", 0.1), ("relax", 0.3), ("relax", 1.0), ("oscillation", 0.5), ("oscillation", 1.0),
         ("oscillation", 2.0), ("shared", 1.0), ("slow_relax", 3.0)]


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rows = [run_case(f, s, args.runs, seed=i) for i, (f, s) in enumerate(CASES)]
    print(f"{'family':12s} {'scale':>5s} {'unequil.':>8s} {'compar.':>8s} {'decided':>8s} {'wrong':>6s} "
          f"{'wrong/compar.':>13s} {'wrong/decided':>13s}")
    for r in rows:
        print(f"{r['family']:12s} {r['scale']:5.1f} {r['not_equilibrated']:8d} {r['comparisons']:8d} "
              f"{r['decided']:8d} {r['wrong']:6d} {r['wrong_fraction_of_comparisons']:13.4f} "
              f"{r['wrong_fraction_of_decided']:13.4f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
