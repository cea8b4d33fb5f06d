"""Seconds per CHGNet force+stress call (40-atom PbTiO3) with the harness's thread default, with one
hand-set thread and with two threads, alternated in fresh processes so that each sees the same load.

    PYTHONPATH=. python benchmarks/thread_defaults.py --rounds 2 --calls 8

Each case is a fresh process (threads are fixed when torch starts): ``default`` lets
:mod:`pto_checks.threads` decide (no OMP_NUM_THREADS), ``omp1`` sets OMP_NUM_THREADS=1 and
``threads2`` forces two threads (torch's own default on a 2-core machine; the harness sets
``OMP_WAIT_POLICY=PASSIVE`` with more than one thread) and ``threads2-active`` two threads that
spin while they wait (libgomp's behaviour without the harness).  Prints one line per
case and a JSON summary (median seconds per call per case, over the rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CASES = {"default": {}, "omp1": {"OMP_NUM_THREADS": "1"}, "threads2": {"PTO_BENCH_THREADS": "2"},
         "threads2-active": {"PTO_BENCH_THREADS": "2", "OMP_WAIT_POLICY": "ACTIVE"}}


def one(calls: int, model: str, n: int) -> dict:
    from pto_checks import structures, threads
    from pto_checks.models import load_model

    forced = os.environ.get("PTO_BENCH_THREADS")
    plan = threads.apply(threads.host_plan(int(forced) if forced else None))
    m = load_model(model, "cpu")
    atoms = structures.supercell(structures.tetragonal(), n)
    atoms.rattle(0.02, seed=1)
    atoms.calc = m.calculator
    times = []
    for _ in range(calls + 2):
        atoms.positions = atoms.positions + 1e-3
        t0 = time.perf_counter()
        atoms.get_forces()
        atoms.get_stress()
        times.append(time.perf_counter() - t0)
    return {"threads": plan.threads, "plan": plan.describe(), "median_s": statistics.median(times[2:]),
            "load_1min": os.getloadavg()[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--model", default="chgnet")
    ap.add_argument("--n", type=int, default=2, help="n x n x n supercell (5 n^3 atoms)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.calls, args.model, args.n)))
        return 0
    chosen = {c: CASES[c] for c in args.cases.split(",")}
    out: dict[str, list[float]] = {c: [] for c in chosen}
    for r in range(args.rounds):
        for case, extra in chosen.items():
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                                     "PTO_CHECKS_THREADS", "OMP_WAIT_POLICY")}
            env.update(extra)
            proc = subprocess.run([sys.executable, __file__, "--one", "--calls", str(args.calls), "--model",
                                   args.model, "--n", str(args.n)], env=env, capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            out[case].append(row["median_s"])
            print(f"round {r + 1} {case:15s}: {row['median_s']:.3f} s per call, {row['plan']}, "
                  f"load {row['load_1min']:.1f}", flush=True)
    print(json.dumps({c: statistics.median(v) for c, v in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
