"""Side-by-side speed of the ASE and batched MD engines on one GPU (issue 4's table).

    python scripts/gpu_bench.py --models chgnet,sevennet --out gpu_bench.json

For each model, on the paper protocol's 5x5x5 PbTiO3 supercell (625 atoms):

* ``ase``: ASE Melchionna NPT through the model's ASE calculator (the reference engine's inner
  loop), seconds per step after warm-up;
* ``batched``: :class:`pto_checks.md.batched_engine.BatchedEngine` with 8 replicas (NPT, 300-1000 K) and
  16 replicas (NPT + NVT, the whole sweep), seconds per batched step including sampling;
* the bare batched model call at batch sizes 1, 8, 16;
* agreement: the first steps of NPT and NVT at 300 K from both engines (same initial velocities,
  same Langevin noise): c/a and Pz side by side;
* the paper protocol's wall time extrapolated from the batched step time (16 replicas x 50,000 steps).

Every number is measured by this script in one run; it prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def ase_step_time(model, task, steps: int) -> float:
    """Seconds per step of ASE's NPT on ``task``'s cell with the model's calculator."""
    from pto_checks import md

    atoms = md.initial_atoms(task)
    atoms.calc = model.calculator
    dyn = md.make_dynamics(task, atoms)
    dyn.run(2)
    _sync()
    t0 = time.perf_counter()
    dyn.run(steps)
    _sync()
    return (time.perf_counter() - t0) / steps


def batched_step_time(model, tasks, steps: int, workdir: Path) -> float:
    """Seconds per batched step (all ``tasks`` together), sampling every 10 steps included."""
    from pto_checks.md.batched_engine import BatchedEngine

    eng = BatchedEngine()
    tasks = [replace(t, steps=steps, sample_every=10, checkpoint_every=10**9) for t in tasks]
    dirs = [workdir / f"r{i}" for i in range(len(tasks))]
    eng.run_many([replace(t, steps=10) for t in tasks], model, [workdir / f"w{i}" for i in range(len(tasks))])
    eng.run_many(tasks, model, dirs)
    return eng.last_wall_s / steps


def call_time(pot, atoms, batch: int, reps: int = 5) -> float:
    pos = torch.as_tensor(np.stack([atoms.positions] * batch), device=pot.device)
    cel = torch.as_tensor(np.stack([atoms.cell.array] * batch), device=pot.device)
    pot(pos, cel)
    _sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        pot(pos, cel)
    _sync()
    return (time.perf_counter() - t0) / reps


def agreement(model, tasks, steps: int, workdir: Path) -> list[dict]:
    from pto_checks import md
    from pto_checks.md.batched_engine import BatchedEngine

    out = []
    tasks = [replace(t, steps=steps, sample_every=steps) for t in tasks]
    rb = BatchedEngine().run_many(tasks, model, [workdir / f"b{i}" for i in range(len(tasks))])
    for i, (t, b) in enumerate(zip(tasks, rb, strict=True)):
        a = md.ASEEngine().run(t, model.calculator, workdir / f"a{i}")
        row = {"ensemble": t.ensemble, "T_K": t.temperature_K, "steps": steps}
        for name, res in (("ase", a), ("batched", b)):
            s = res["samples"][-1]
            lens = sorted([s["a"], s["b"], s["c"]])
            row[f"{name}_c_over_a"] = lens[2] / (0.5 * (lens[0] + lens[1]))
            row[f"{name}_Pz"] = s["Pz"]
            row[f"{name}_T_K"] = s["T_K"]
        out.append(row)
    return out


def attempt(r: dict, key: str, fn) -> None:
    """r[key] = fn(), or r[key + '_error'] with the exception (printed as it happens)."""
    t0 = time.perf_counter()
    try:
        r[key] = fn()
    except Exception as exc:
        import traceback

        traceback.print_exc()
        r[key + "_error"] = f"{type(exc).__name__}: {exc}"[:500]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    print(f"  {key}: {r.get(key, r.get(key + '_error'))} ({time.perf_counter() - t0:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    from pto_checks import md, stages
    from pto_checks.models import load_model
    from pto_checks.models.batched import batched_potential
    from pto_checks.protocols import get_protocol

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="chgnet,sevennet")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ase-steps", type=int, default=10)
    ap.add_argument("--batched-steps", type=int, default=40)
    ap.add_argument("--agree-steps", type=int, default=20)
    ap.add_argument("--supercell", type=int, default=5)
    ap.add_argument("--out", default="gpu_bench.json")
    args = ap.parse_args(argv)

    env = {"torch": torch.__version__, "device": args.device,
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(json.dumps(env), flush=True)
    proto = get_protocol("paper")
    proto = proto.with_overrides(md={"supercell": args.supercell})
    npt = stages.md_tasks(proto, "npt", "melchionna")
    nvt = stages.md_tasks(proto, "nvt", "langevin")
    results = {"env": env, "models": {}}
    for name in args.models.split(","):
        r: dict = {}
        results["models"][name] = r
        try:
            t0 = time.perf_counter()
            model = load_model(name, device=args.device)
            r["load_s"] = time.perf_counter() - t0
            atoms = md.initial_atoms(npt[0])
            r["n_atoms"] = len(atoms)
            pot = batched_potential(model, atoms.numbers, atoms.get_masses(), args.device)
            r["potential"] = pot.name
            # force agreement on one rattled frame
            atoms.rattle(0.05, seed=1)
            atoms.calc = model.calculator
            e, f = atoms.get_potential_energy(), atoms.get_forces()
            s = atoms.get_stress(voigt=False)
            E, F, S = pot(torch.as_tensor(atoms.positions[None], device=pot.device),
                          torch.as_tensor(atoms.cell.array[None], device=pot.device))
            r["max_dF_eV_A"] = float(np.abs(F[0].cpu().numpy() - f).max())
            r["dE_eV"] = float(E[0].cpu() - e)
            r["max_dS_eV_A3"] = float(np.abs(S[0].cpu().numpy() - s).max())
            print(name, "agreement", r, flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                attempt(r, "ase_s_per_step", lambda: ase_step_time(model, npt[0], args.ase_steps))  # noqa: B023
                for b in (1, 4, 8, 16):
                    attempt(r, f"call_s_batch{b}", lambda b=b: call_time(pot, md.initial_atoms(npt[0]), b))  # noqa: B023
                    if torch.cuda.is_available():
                        r[f"mem_GiB_batch{b}"] = torch.cuda.max_memory_allocated() / 2**30
                        torch.cuda.reset_peak_memory_stats()
                attempt(r, "batched8_s_per_step",
                        lambda: batched_step_time(model, npt, args.batched_steps, Path(tmp) / "b8"))  # noqa: B023
                attempt(r, "batched16_s_per_step",
                        lambda: batched_step_time(model, npt + nvt, args.batched_steps, Path(tmp) / "b16"))  # noqa: B023
                if "ase_s_per_step" in r and "batched8_s_per_step" in r:
                    r["speedup_replica_steps_8"] = 8 * r["ase_s_per_step"] / r["batched8_s_per_step"]
                    r["paper_protocol_hours_ase"] = 16 * 50_000 * r["ase_s_per_step"] / 3600
                    r["paper_protocol_hours_batched8x2"] = 2 * 50_000 * r["batched8_s_per_step"] / 3600
                if "ase_s_per_step" in r and "batched16_s_per_step" in r:
                    r["speedup_replica_steps_16"] = 16 * r["ase_s_per_step"] / r["batched16_s_per_step"]
                    r["paper_protocol_hours_batched"] = 50_000 * r["batched16_s_per_step"] / 3600
                if args.agree_steps:
                    attempt(r, "agreement_md",
                            lambda: agreement(model, [npt[0], nvt[0]], args.agree_steps, Path(tmp) / "ag"))  # noqa: B023
            if torch.cuda.is_available():
                r["max_gpu_mem_GiB"] = torch.cuda.max_memory_allocated() / 2**30
        except Exception as exc:  # record and go on to the next model
            import traceback

            traceback.print_exc()
            r["error"] = f"{type(exc).__name__}: {exc}"
        print(name, json.dumps(r, indent=1), flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    print("\nmodel | ASE s/step (1 replica) | batched s/step 8 | 16 | replica-steps/s ASE | batched 8 | 16 | "
          "speed-up 8 | 16 | paper protocol h (ASE -> batched)")
    for name, r in results["models"].items():
        if all(k in r for k in ("ase_s_per_step", "batched8_s_per_step", "batched16_s_per_step")):
            print(f"{name} | {r['ase_s_per_step']:.4f} | {r['batched8_s_per_step']:.4f} | "
                  f"{r['batched16_s_per_step']:.4f} | {1 / r['ase_s_per_step']:.2f} | "
                  f"{8 / r['batched8_s_per_step']:.2f} | {16 / r['batched16_s_per_step']:.2f} | "
                  f"{r['speedup_replica_steps_8']:.1f}x | {r['speedup_replica_steps_16']:.1f}x | "
                  f"{r['paper_protocol_hours_ase']:.1f} -> {r['paper_protocol_hours_batched']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
