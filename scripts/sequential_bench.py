"""Sequential MD against long fixed runs on ``synthetic:ferro`` (issue 11, items 3 and 4).

Model: ``synthetic:ferro`` with ``J_eV_per_A2 = 0.3``; NVT (Langevin) at the protocol's NVT lattice
(c/a = 1.064 imposed, which pins the polar axis to z: the order parameter |<P>| is then clean on a
2x2x2 cell, 40 atoms); ASE engine; 2 fs; samples every 5 steps.  All runs go through the
harness's own path (:func:`pto_checks.md.sweep.md_sweep`), each part in its own fresh cache.

Parts (``--part``):

* ``reference``: a long fixed run (``md.steps = --ref-steps``, no ``max_steps``) at every grid
  temperature: its phases (decided at 95 %) and its Tc bracket;
* ``sequential``: the sequential protocol (``md.steps = --min``, ``md.max_steps = --max``,
  bisection to ``--resolution`` K, cooling branch) on the same grid: phases, Tc on heating and
  cooling, steps used; compared with the reference and with the fixed protocol at the cap
  (grid x ``--max`` steps);
* ``seeds``: ``--seeds`` seeds of the sequential protocol on ``--seed-temperatures`` (no
  bisection, no cooling): per temperature, how often it was decided polar / cubic / undecided;
  a decisive verdict that contradicts the reference is wrong.

    python scripts/sequential_bench.py --part reference --out benchmarks/sequential_ferro_reference.json
    python scripts/sequential_bench.py --part sequential --out benchmarks/sequential_ferro_sequential.json
    python scripts/sequential_bench.py --part seeds --jobs 2 --out benchmarks/sequential_ferro_seeds.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from types import SimpleNamespace

os.environ.setdefault("OMP_NUM_THREADS", "1")


def model(j: float):
    from pto_checks.models.ferro import FerroParameters, make

    calc = make(FerroParameters(J_eV_per_A2=j))
    return SimpleNamespace(name=f"ferro-J{j}", calculator=calc, device="cpu",
                           identity=lambda: {"ferro": calc.identity()})


def protocol(overrides: list[str]):
    from pto_checks.protocols import PROTOCOLS, apply_overrides

    base = ["md.supercell=2", "md.sample_every=5", "md.trajectory_every=100", "md.checkpoint_every=1000"]
    return apply_overrides(PROTOCOLS["smoke"], base + overrides)


def sweep(j: float, overrides: list[str]) -> dict:
    from pto_checks.cache import Cache
    from pto_checks.md.sequential import decide
    from pto_checks.md.sweep import Sweep, md_sweep

    proto = protocol(overrides)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = md_sweep(model(j), proto, Cache(tmp), "nvt", "langevin", progress=False)
        s = Sweep("nvt", "langevin", rows, proto)

    def plain(r: dict) -> dict:
        phase, text = decide(r, "nvt")
        return {"T_K": r["T_K"], "branch": r.get("branch", "fixed"),
                "steps": r.get("steps_reached", r["task"]["steps"]), "decided_phase": phase,
                "P_abs": r.get("P_abs_mean"), "P_abs_sem": r.get("P_abs_sem"), "n_eff": r.get("P_abs_n_eff"),
                "text": text}

    return {"rows": [plain(r) for r in s.rows], "cooling_rows": [plain(r) for r in s.cooling_rows],
            "tc": {k: v for k, v in s.tc.items() if k != "sequential"}, "wall_s": time.perf_counter() - t0,
            "overrides": overrides}


def _seed(args: tuple) -> dict:
    j, overrides, seed = args
    out = sweep(j, [*overrides, f"md.seed={seed}"])
    out["seed"] = seed
    return out


def _seed_summary(runs: list[dict]) -> dict:
    counts: dict[str, dict[str, int]] = {}
    for r in runs:
        for row in r["rows"]:
            c = counts.setdefault(f"{row['T_K']:.0f}", {})
            key = row["decided_phase"] or "undecided"
            c[key] = c.get(key, 0) + 1
    n = sum(len(r["rows"]) for r in runs)
    return {"runs": runs, "seeds_done": len(runs), "counts": counts,
            "mean_steps_per_temperature": sum(row["steps"] for r in runs for row in r["rows"]) / max(n, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("reference", "sequential", "seeds"), required=True)
    ap.add_argument("--J", type=float, default=0.3)
    ap.add_argument("--temperatures", default="700,1000,1300,1600")
    ap.add_argument("--seed-temperatures", default="700,1150,1600")
    ap.add_argument("--ref-steps", type=int, default=32000)
    ap.add_argument("--min", type=int, default=1000)
    ap.add_argument("--max", type=int, default=16000)
    ap.add_argument("--resolution", type=float, default=75.0)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    info = {"model": f"synthetic:ferro J_eV_per_A2={a.J}", "ensemble": "nvt/langevin, 2x2x2, ASE engine",
            "part": a.part, "args": vars(a)}
    if a.part == "reference":
        res = sweep(a.J, [f"md.temperatures_K={a.temperatures}", f"md.steps={a.ref_steps}"])
        res["fixed_steps_total"] = sum(r["steps"] for r in res["rows"])
    elif a.part == "sequential":
        res = sweep(a.J, [f"md.temperatures_K={a.temperatures}", f"md.steps={a.min}", f"md.max_steps={a.max}",
                          f"md.tc_resolution_K={a.resolution}"])
        heat = sum(r["steps"] for r in res["rows"])
        grid = [float(t) for t in a.temperatures.split(",")]
        res["steps"] = {"sequential_heating_grid": sum(r["steps"] for r in res["rows"] if r["T_K"] in grid),
                        "sequential_heating_with_bisection": heat,
                        "sequential_cooling": sum(r["steps"] for r in res["cooling_rows"]),
                        "fixed_at_cap_grid": len(grid) * a.max}
    else:
        ov = [f"md.temperatures_K={a.seed_temperatures}", f"md.steps={a.min}", f"md.max_steps={a.max}",
              "md.tc_resolution_K=100000", "md.cooling=false"]
        runs: list[dict] = []
        with ProcessPoolExecutor(a.jobs) as ex:
            for r in ex.map(_seed, [(a.J, ov, s) for s in range(1, a.seeds + 1)]):
                runs.append(r)
                with open(a.out + ".partial", "w") as fh:  # seeds so far (a run cut short keeps them)
                    json.dump(dict(info, **_seed_summary(runs)), fh, indent=1, default=str)
        res = _seed_summary(runs)
    info.update(res)
    with open(a.out, "w") as fh:
        json.dump(info, fh, indent=1, default=str)
    print(json.dumps({k: v for k, v in info.items() if k not in ("runs",)}, indent=1, default=str))


if __name__ == "__main__":
    main()
