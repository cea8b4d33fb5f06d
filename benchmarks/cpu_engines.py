"""ASE vs batched MD engine on the CPU: replica-steps per second and peak memory.

    PYTHONPATH=. python benchmarks/cpu_engines.py                        # the whole table
    PYTHONPATH=. python benchmarks/cpu_engines.py --models chgnet --sizes 2 --replicas 1,8

Each case (model, engine, n x n x n supercell, replicas) runs in a fresh subprocess, so that its
peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: torch's allocations
included, which ``tracemalloc`` does not see) is that case's alone.  A case loads the model, runs
``--warmup`` NPT (Melchionna) steps of every replica (temperatures 300, 400, ... K), then times
``--steps`` more steps from the engine's own progress callback (one sample per step), so neither
the model load nor the first force call is in the rate.  The ASE engine runs replicas one after
another: its replica-steps per second do not depend on the number of replicas and are measured
with one replica (its memory is the one-replica memory whatever the number).

Writes ``OUT.json`` (every row, the machine, the threads and the command) and ``OUT.md`` (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _rss_mb() -> float:
    """Current resident memory of this process (MB, from /proc/self/status; maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(model_name: str, engine: str, n: int, replicas: int, warmup: int, steps: int) -> dict:
    """One case in this process (called in a fresh subprocess by :func:`main`)."""
    from pto_checks import threads
    from pto_checks.md.engines import get_engine, run_until
    from pto_checks.md.task import MDTask
    from pto_checks.models import load_model
    from pto_checks.protocols import PROTOCOLS

    plan = threads.applied() or threads.apply(threads.host_plan())
    model = load_model(model_name, "cpu")
    model_rss = _rss_mb()
    p = PROTOCOLS["paper"].md
    tasks = [MDTask("npt", "melchionna", 300.0 + 100.0 * k, n, p.start_a, p.start_c, warmup + steps, p.timestep_fs,
                    p.seed, p.ttime_fs, p.pfactor_ase, p.mtk_tdamp_fs, p.mtk_pdamp_fs, p.friction_per_fs,
                    sample_every=1, trajectory_every=10**6, checkpoint_every=10**6) for k in range(replicas)]
    stamps: list[tuple[int, float]] = []

    def progress(step: int, _row: dict, _done: bool) -> None:
        stamps.append((step, time.perf_counter()))

    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(tmp) / f"r{k}" for k in range(replicas)]
        get_engine(engine)  # import the engine before timing
        t0 = time.perf_counter()
        run_until(engine, tasks, model, dirs, [warmup + steps] * replicas, progress=progress)
        wall = time.perf_counter() - t0
    # the timed steps: from the last warm-up step to the end, per replica run (ASE: one after another)
    timed_steps, timed_s = 0, 0.0
    runs: list[list[tuple[int, float]]] = [[]]
    for s, t in stamps:
        if runs[-1] and s <= runs[-1][-1][0]:
            runs.append([])
        runs[-1].append((s, t))
    for run in runs:
        window = [(s, t) for s, t in run if s >= warmup]
        if len(window) >= 2:
            timed_steps += window[-1][0] - window[0][0]
            timed_s += window[-1][1] - window[0][1]
    per_batch_steps_per_s = timed_steps / timed_s if timed_s > 0 else float("nan")
    replica_steps = per_batch_steps_per_s * (replicas if engine == "batched" else 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {"model": model_name, "engine": engine, "n": n, "n_atoms": 5 * n**3, "replicas": replicas,
            "warmup_steps": warmup, "timed_steps": steps, "replica_steps_per_s": replica_steps,
            "seconds_per_model_call": 1 / per_batch_steps_per_s if per_batch_steps_per_s else None,
            "peak_rss_MB": peak, "model_loaded_rss_MB": model_rss,
            "md_MB_per_replica": max(0.0, peak - model_rss) / replicas if engine == "batched" else peak - model_rss,
            "wall_s": wall, "threads": plan.threads, "load_1min_end": os.getloadavg()[0]}


def _cases(models: list[str], sizes: list[int], replicas: list[int]) -> list[tuple[str, str, int, int]]:
    out = []
    for m in models:
        for n in sizes:
            out.append((m, "ase", n, 1))
            out += [(m, "batched", n, r) for r in replicas]
    return out


def _markdown(data: dict) -> str:
    lines = [f"# ASE vs batched MD engine on the CPU ({data['machine']['cpus']} CPUs, "
             f"{data['machine']['mem_total_GB']:.0f} GB, {data['threads']} thread(s) per process)", "",
             f"Command: `{data['command']}`", "",
             "NPT (Melchionna) MD steps of PbTiO3 n x n x n supercells; replica-steps/s over the timed steps "
             "after the warm-up; peak memory: the case's own process (ru_maxrss), the model loaded included. "
             "ASE runs replicas one after another: its rate and memory do not depend on the number of "
             "replicas (measured with one).", "",
             "| model | atoms | replicas | ASE replica-steps/s | batched replica-steps/s | batched / ASE | "
             "ASE peak MB | batched peak MB | batched MD MB per replica | load (1 min) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    rows = data["rows"]
    for r in rows:
        if r["engine"] != "batched":
            continue
        ase = next((a for a in rows if a["engine"] == "ase" and a["model"] == r["model"] and a["n"] == r["n"]), None)
        a_rate = ase["replica_steps_per_s"] if ase else float("nan")
        lines.append(f"| {r['model']} | {r['n_atoms']} | {r['replicas']} | {a_rate:.3g} | "
                     f"{r['replica_steps_per_s']:.3g} | {r['replica_steps_per_s'] / a_rate:.2f} | "
                     f"{ase['peak_rss_MB'] if ase else float('nan'):.0f} | {r['peak_rss_MB']:.0f} | "
                     f"{r['md_MB_per_replica']:.0f} | {r['load_1min_end']:.1f} |")
    return "\n".join(lines) + "\n"


PACKAGE_TABLE = HERE.parent / "pto_checks" / "md" / "cpu_engines.json"


def package_table(data: dict) -> dict:
    """The summary ``--engine auto`` reads (:mod:`pto_checks.md.cpu_table`): per model family, per
    size and number of replicas, both engines' replica-steps/s and the batched engine's MD memory
    per replica (MB above the loaded model)."""
    from pto_checks.models import get_spec

    families: dict[str, list[dict]] = {}
    rows = data["rows"]
    for r in rows:
        if r["engine"] != "batched":
            continue
        ase = next((a for a in rows if a["engine"] == "ase" and a["model"] == r["model"] and a["n"] == r["n"]), None)
        if ase is None:
            continue
        families.setdefault(get_spec(r["model"]).family, []).append({
            "n_atoms": r["n_atoms"], "replicas": r["replicas"],
            "ase_replica_steps_per_s": round(ase["replica_steps_per_s"], 4),
            "batched_replica_steps_per_s": round(r["replica_steps_per_s"], 4),
            "batched_mb_per_replica": round(r["md_MB_per_replica"], 1)})
    return {"source": "benchmarks/cpu_engines.py (full rows: benchmarks/cpu_engines.json)",
            "created": data["created"], "threads": data["threads"], "machine": data["machine"],
            "families": families}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="chgnet,sevennet")
    ap.add_argument("--sizes", default="2,3", help="n of the n x n x n supercells (5 n^3 atoms)")
    ap.add_argument("--replicas", default="1,4,8", help="replicas of the batched engine")
    ap.add_argument("--warmup", type=int, default=2, help="steps before the timing starts")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per case")
    ap.add_argument("--skip", default="", help="cases to leave out, e.g. sevennet:3 (model:n)")
    ap.add_argument("--out", default=str(HERE / "cpu_engines"), help="OUT.json and OUT.md")
    ap.add_argument("--case", nargs=4, metavar=("MODEL", "ENGINE", "N", "REPLICAS"), help=argparse.SUPPRESS)
    ap.add_argument("--package-table", default=None, metavar="JSON",
                    help="write the summary --engine auto reads here (default: "
                         f"{PACKAGE_TABLE.relative_to(HERE.parent)} when --out is the default)")
    ap.add_argument("--summarize", default=None, metavar="OUT.json",
                    help="rebuild OUT.md and the package table from a finished OUT.json (no measuring)")
    args = ap.parse_args(argv)
    table_path = Path(args.package_table) if args.package_table else (
        PACKAGE_TABLE if args.out == ap.get_default("out") else None)
    if args.summarize:
        data = json.loads(Path(args.summarize).read_text())
        Path(args.summarize).with_suffix(".md").write_text(_markdown(data))
        if table_path is not None:
            table_path.write_text(json.dumps(package_table(data), indent=1) + "\n")
        return 0
    if args.case:
        m, e, n, r = args.case
        print(json.dumps(run_case(m, e, int(n), int(r), args.warmup, args.steps)))
        return 0
    skip = {tuple(s.split(":")) for s in args.skip.split(",") if s}
    cases = [c for c in _cases(args.models.split(","), [int(x) for x in args.sizes.split(",")],
                               [int(x) for x in args.replicas.split(",")]) if (c[0], str(c[2])) not in skip]
    out = Path(args.out)
    rows = []
    for m, e, n, r in cases:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--warmup", str(args.warmup), "--steps", str(args.steps),
                               "--case", m, e, str(n), str(r)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{m} {e} n={n} x{r}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{m:9s} {e:8s} {row['n_atoms']:4d} atoms x{r}: {row['replica_steps_per_s']:.3g} replica-steps/s, "
              f"peak {row['peak_rss_MB']:.0f} MB ({time.perf_counter() - t0:.0f} s, load {row['load_1min_end']:.1f})",
              flush=True)
        data = {"command": "python benchmarks/cpu_engines.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "mem_total_GB": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9},
                "threads": rows[0]["threads"], "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "rows": rows}
        out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
        out.with_suffix(".md").write_text(_markdown(data))
        if table_path is not None:
            table_path.write_text(json.dumps(package_table(data), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
