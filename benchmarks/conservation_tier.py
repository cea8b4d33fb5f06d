"""Benchmark: wall time of the whole conservation tier for one model, computed afresh (no cache).

    OMP_NUM_THREADS=1 python benchmarks/conservation_tier.py --model chgnet [--limit-s 120] [--json out.json]

Runs the four parts of :mod:`pto_checks.conservation` exactly as the fixtures do (default settings,
NVE at 300 K and 1000 K) and prints one line per part and the total, with the machine's load average
(timings on a loaded machine are upper bounds).  With ``--limit-s`` it exits 1 when the total is above.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit-s", type=float, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from pto_checks import conservation as cons
    from pto_checks import models
    from pto_checks.reference import tolerance

    model = models.load_model(models.get_spec(args.model), args.device)
    calc, s = model.calculator, cons.ConservationSettings()
    parts = {
        "energy_force": lambda: cons.energy_force_consistency(calc, s),
        "energy_stress": lambda: cons.energy_stress_consistency(calc, s),
        "energy_scans": lambda: cons.scan_energies(calc, s),
        "nve_300K": lambda: cons.nve_simulate(calc, cons.nve_cell(s), 300.0, s.nve_timestep_fs, s.nve_steps, s.seed),
        "nve_1000K": lambda: cons.nve_simulate(calc, cons.nve_cell(s), 1000.0, s.nve_timestep_fs, s.nve_steps, s.seed),
    }
    seconds = {}
    for name, run in parts.items():
        t0 = time.perf_counter()
        run()
        seconds[name] = time.perf_counter() - t0
        print(f"{args.model} {name}: {seconds[name]:.1f} s", flush=True)
    total = sum(seconds.values())
    load = os.getloadavg()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"{args.model} conservation tier total {total:.1f} s (OMP_NUM_THREADS={threads}, {os.cpu_count()} cores, "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f})")
    tolerance("conservation_nve")  # the reference data is readable (the checks need it)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"model": args.model, "seconds": seconds, "total_s": total, "load_average": load,
                       "omp_num_threads": threads, "cores": os.cpu_count()}, fh, indent=1)
    if args.limit_s is not None and total > args.limit_s:
        print(f"over the limit: {total:.1f} s > {args.limit_s} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
