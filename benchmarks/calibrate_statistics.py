"""Calibration of the dynamic checks' statistics through the path the checks use.

Simulated series with known answers go through the functions the checks call:
:func:`pto_checks.statistics.run_statistics` (equilibrated start detected on an independent
potential energy, two error estimates, the slow-mode guard), :func:`pto_checks.phase.row_decision`
/ :func:`pto_checks.decisions.decide_series` (the three-outcome rule), :func:`combine_replicas`
(``md.replicas``), :func:`pto_checks.analysis.summarize_run` + :func:`pto_checks.phase.decide_phase`
(whole runs: telegraph Pz, correlated paraelectric field) and ``pto-checks analyze`` (a few CSVs).

Cases (``--n`` series each, default 2000):

* AR(1) (inefficiency g = 10 samples of 0.02 ps) at n_eff 10, 20, 30, 100: coverage of the 95 %
  interval, wrong decisions with the true mean on the threshold, decisions with it half an
  interval away; alone and as R = 3 replicas; a sequential schedule (looks at 1, 2, 4, 8 x the
  n_eff-10 length, Bonferroni over 4 looks): wrong decisions per look and over the schedule.
* AR(1) (g = 10) plus a sinusoid of period 4.5 ps (amplitude 2 sigma, random phase), windows of
  3-20 ps, true mean on the threshold: how often a window shorter than one period is decided.
* Telegraph Pz = +-0.4 C/m^2 with 1-2 ps dwell times (NVT, 30 ps): how often decided non-polar.
* An equilibration transient (A exp(-t / tau)) in the series and the potential energy: coverage
  and wrong decisions with the start detected on the potential energy.
* A zero-mean Gaussian displacement field with a correlation length of 1.5-2 cells on 3^3 cells
  (NPT; frames through analysis.polarization): how often decided polar.

Writes ``benchmarks/calibration.json`` and ``benchmarks/calibration.md``.  One process, numpy.
Run: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/calibrate_statistics.py [--n 2000]``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pto_checks import analysis, statistics
from pto_checks.decisions import Side, StatisticsSettings, decide_series
from pto_checks.phase import decide_phase

DT_PS = 0.02
SETTINGS = StatisticsSettings(0.95, 10.0, False, 0.5)
HERE = Path(__file__).parent


def ar1(rng: np.random.Generator, m: int, n: int, g: float) -> np.ndarray:
    """m AR(1) series of n samples, unit variance, statistical inefficiency g."""
    rho = (g - 1.0) / (g + 1.0)
    e = rng.standard_normal((m, n)) * math.sqrt(1 - rho * rho)
    x = np.empty((m, n))
    x[:, 0] = rng.standard_normal(m)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    return x


def run_stats(x: np.ndarray, epot: np.ndarray) -> statistics.SeriesStats:
    """The checks' path for one series sampled with a potential energy: one production window
    from the start detected on the potential energy."""
    rs = statistics.run_statistics({"q": x, "epot_eV": epot}, {}, DT_PS, analysis.EQUILIBRATION_FROM)
    return rs["q"]


def rate(flags) -> float:
    return float(np.mean(flags)) if len(flags) else float("nan")


def ar1_cases(rng: np.random.Generator, m: int, replicas: int = 3) -> list[dict]:
    out = []
    g = 10.0
    for n_eff in (10, 20, 30, 100):
        n = int(n_eff * g)
        t = time.time()
        xs = ar1(rng, m * replicas, n, g)
        es = rng.standard_normal((m * replicas, n))  # the potential energy: independent, stationary
        stats = [run_stats(x, e) for x, e in zip(xs, es, strict=True)]
        single, reps = stats[:m], stats  # replica sets: consecutive triples of all the runs
        half = float(np.median([d.interval.high - d.interval.low for d in
                                (decide_series(s, 0.0, settings=SETTINGS) for s in single[:200])])) / 4.0
        row = {"case": f"AR(1) n_eff {n_eff}", "n_eff": n_eff, "samples": n, "series": m}
        for label, ss in (("single", single),
                          (f"replicas {replicas}", [statistics.combine_replicas(reps[i:i + replicas])
                                                    for i in range(0, len(reps), replicas)])):
            at = [decide_series(s, 0.0, settings=SETTINGS) for s in ss]
            away = [decide_series(s, -half, settings=SETTINGS) for s in ss]  # true mean above by half an interval
            row[label] = {
                "coverage": rate([d.interval.low <= 0.0 <= d.interval.high for d in at]),
                "wrong_at_threshold": rate([d.side is not Side.UNDECIDED for d in at]),
                "decided_half_interval_away": rate([d.side is Side.ABOVE for d in away]),
                "wrong_half_interval_away": rate([d.side is Side.BELOW for d in away]),
                "mean_half_width": float(np.mean([(d.interval.high - d.interval.low) / 2 for d in at])),
            }
        row["seconds"] = round(time.time() - t, 1)
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def sequential_case(rng: np.random.Generator, m: int) -> dict:
    """Looks at n0, 2 n0, 4 n0, 8 n0 (n0: n_eff 10), Bonferroni over the 4 looks, mean on the threshold."""
    g, n0, looks = 10.0, 100, (1, 2, 4, 8)
    xs = ar1(rng, m, n0 * looks[-1], g)
    es = rng.standard_normal((m, n0 * looks[-1]))
    per_look = np.zeros(len(looks))
    any_wrong = 0
    cover = np.zeros(len(looks))
    for x, e in zip(xs, es, strict=True):
        wrong = False
        for k, f in enumerate(looks):
            d = decide_series(run_stats(x[: n0 * f], e[: n0 * f]), 0.0, settings=SETTINGS, looks=len(looks))
            cover[k] += d.interval.low <= 0.0 <= d.interval.high
            if d.side is not Side.UNDECIDED:
                per_look[k] += 1
                wrong = True
                break  # a decided run leaves the schedule
        any_wrong += wrong
    row = {"case": "sequential AR(1), 4 looks (n_eff 10, 20, 40, 80), Bonferroni", "series": m,
           "wrong_per_look": (per_look / m).round(4).tolist(), "wrong_over_schedule": any_wrong / m,
           "level_per_look": SETTINGS.level(len(looks))}
    print(json.dumps(row), flush=True)
    return row


def sinusoid_case(rng: np.random.Generator, m: int, amplitude: float = 2.0, replicas: int = 1,
                  windows: tuple[float, ...] = (3.0, 4.0, 6.0, 9.0, 20.0)) -> dict:
    period = 4.5
    n_max = int(windows[-1] / DT_PS)
    xs = ar1(rng, m * replicas, n_max, 10.0)
    phase0 = rng.uniform(0, 2 * np.pi, m * replicas)  # each replica rings with its own phase
    t = np.arange(n_max) * DT_PS
    xs = xs + amplitude * np.sin(2 * np.pi * t[None, :] / period + phase0[:, None])
    es = rng.standard_normal((m * replicas, n_max))
    out = {}
    for w in windows:
        n = int(w / DT_PS)
        st = [run_stats(x[:n], e[:n]) for x, e in zip(xs, es, strict=True)]
        if replicas > 1:
            st = [statistics.combine_replicas(st[i:i + replicas]) for i in range(0, len(st), replicas)]
        ds = [decide_series(s, 0.0, settings=SETTINGS) for s in st]
        out[f"{w:g} ps"] = {"decided": rate([d.side is not Side.UNDECIDED for d in ds]),
                            "coverage": rate([d.interval.low <= 0 <= d.interval.high for d in ds])}
    row = {"case": f"AR(1) + sinusoid (period {period} ps, amplitude {amplitude} sigma), mean on the threshold"
                   + (f", {replicas} replicas" if replicas > 1 else ", single runs"),
           "series": m, "windows": out,
           "decided_below_one_period": max(v["decided"] for k, v in out.items() if float(k.split()[0]) < period)}
    print(json.dumps(row), flush=True)
    return row


def _base_sample(rng: np.random.Generator, i: int, dt: float, temperature: float) -> dict:
    return {"time_ps": i * dt, "step": i, "T_K": temperature + rng.standard_normal(),
            "epot_eV": -200 + 0.1 * rng.standard_normal(), "lindemann": 0.08 + 0.003 * rng.standard_normal(),
            "order": 1.0}


def telegraph_case(rng: np.random.Generator, m: int, length_ps: float = 30.0, dt: float = 0.1) -> dict:
    """NVT at the imposed lattice: Pz = +-0.4 C/m^2, flipping after 1-2 ps dwells; every frame polar."""
    n = int(length_ps / dt)
    phases = []
    for _ in range(m):
        sign, left, samples = 1.0, rng.uniform(1, 2), []
        noise = ar1(rng, 1, n, 3.0)[0]
        for i in range(n):
            left -= dt
            if left <= 0:
                sign, left = -sign, rng.uniform(1, 2)
            s = _base_sample(rng, i, dt, 900.0)
            pz = sign * 0.4 + 0.05 * noise[i]
            s.update(a=3.90, b=3.90, c=4.15, Px=0.02 * rng.standard_normal(), Py=0.02 * rng.standard_normal(),
                     Pz=pz, P_local_abs=abs(pz) + 0.1)
            samples.append(s)
        row = analysis.summarize_run(samples, None, 900.0, 0.5)
        row["task"] = {"supercell": 4}
        phases.append(decide_phase(row, "nvt", SETTINGS).phase.value)
    out = {"case": f"telegraph Pz +-0.4 C/m^2, 1-2 ps dwell, NVT {length_ps:g} ps", "series": m,
           "decided_nonpolar": rate([p == "cubic" for p in phases]),
           "decided_polar": rate([p == "tetragonal" for p in phases]),
           "undecided": rate([p == "undecided" for p in phases])}
    print(json.dumps(out), flush=True)
    return out


def correlated_field_case(rng: np.random.Generator, m: int, frames: int = 60, xi_cells: float = 1.75) -> dict:
    """A zero-mean Gaussian Ti displacement field (0.15 A rms, correlation length ``xi_cells``) plus
    independent 0.05 A noise on every atom, 3^3 cells, independent frames, NPT."""
    from pto_checks import structures

    cells = 3
    reps = (cells,) * 3
    at = structures.supercell(structures.tetragonal(a=3.95, c=3.95), cells)
    _, cidx, basis = analysis.site_assignment(at.positions, at.cell.array, reps, at.numbers)
    d = np.minimum(np.arange(cells), cells - np.arange(cells))
    kern = np.exp(-(d[:, None, None] ** 2 + d[None, :, None] ** 2 + d[None, None, :] ** 2) / (2 * xi_cells**2))
    filt = np.sqrt(np.abs(np.fft.fftn(kern)))
    ti = basis == 1
    c = cidx[ti]
    rms = float(np.sqrt(np.mean([np.real(np.fft.ifftn(np.fft.fftn(rng.standard_normal((3, *reps)), axes=(1, 2, 3))
                                                       * filt, axes=(1, 2, 3))) ** 2 for _ in range(200)])))
    phases, align = [], []
    for _ in range(m):
        samples = []
        for i in range(frames):
            w = np.real(np.fft.ifftn(np.fft.fftn(rng.standard_normal((3, *reps)), axes=(1, 2, 3)) * filt,
                                     axes=(1, 2, 3)))
            w /= rms  # a fixed scale: the field's amplitude fluctuates from frame to frame (Gaussian)
            u = 0.05 * rng.standard_normal((len(at), 3))
            u[ti] += 0.15 * w[:, c[:, 0], c[:, 1], c[:, 2]].T
            p = analysis.polarization(None, at.cell.array, reps, assignment=(u, cidx, basis))
            lens = 3.95 + 0.01 * rng.standard_normal(3)
            s = _base_sample(rng, i, 0.1, 800.0)
            s.update(a=lens[0], b=lens[1], c=lens[2], Px=p["P"][0], Py=p["P"][1], Pz=p["P"][2],
                     P_local_abs=p["local_abs"])
            samples.append(s)
        row = analysis.summarize_run(samples, None, 800.0, 0.5)
        row["task"] = {"supercell": cells}
        phases.append(decide_phase(row, "npt", SETTINGS).phase.value)
        align.append(row["P_alignment"])
    thr = analysis.polar_order_threshold(27, 0.5)
    out = {"case": f"correlated paraelectric field on 3^3 (correlation length {xi_cells} cells), NPT", "series": m,
           "frames": frames, "mean_polar_order": float(np.mean(align)), "polar_order_threshold": thr,
           "decided_polar": rate([p in ("tetragonal", "supertetragonal") for p in phases]),
           "decided_cubic": rate([p == "cubic" for p in phases]),
           "undecided": rate([p == "undecided" for p in phases])}
    print(json.dumps(out), flush=True)
    return out


def analyze_cli_case(rng: np.random.Generator, m: int) -> dict:
    """A few AR(1) series (n_eff 20) as CSVs through ``pto-checks analyze --json``: the same
    decisions as the direct path (fixed discard of half the run: a CSV without a potential energy)."""
    xs = ar1(rng, m, 400, 20.0)
    same, covered = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, x in enumerate(xs):
            f = Path(tmp) / f"run{i}.csv"
            f.write_text("time_ps,c_over_a\n" + "\n".join(f"{k * DT_PS:.4f},{1.01 + 0.001 * v:.9f}"
                                                            for k, v in enumerate(x)))
            files.append(f)
        res = subprocess.run([sys.executable, "-c", "from pto_checks.cli import main; import sys; sys.exit(main())",
                              "analyze", *map(str, files), "--threshold", "c_over_a=1.01", "--json"],
                             capture_output=True, text=True, check=True)
        data = json.loads(res.stdout)
    for x, r in zip(xs, data, strict=True):
        q = r["quantities"][0]
        direct = decide_series(statistics.series_statistics(1.01 + 0.001 * x, "c_over_a", "", len(x) // 2, DT_PS),
                               1.01, settings=SETTINGS)
        same += q["outcomes"][0]["side"] == direct.side.value
        covered += q["low"] <= 1.01 <= q["high"]
    out = {"case": "AR(1) n_eff 20 through pto-checks analyze (CSV)", "series": m,
           "same_outcome_as_direct": same / m, "coverage": covered / m}
    print(json.dumps(out), flush=True)
    return out


def transient_case(rng: np.random.Generator, m: int) -> list[dict]:
    """An equilibration transient seen by both the decided series and the potential energy:
    AR(1) (g = 10) plus A exp(-t / tau), the true mean 0 on the threshold.  The start detected on
    the potential energy must still skip it: coverage and wrong decisions as for AR(1)."""
    out = []
    for run_ps, amp, tau in ((3.0, 3.0, 0.3), (6.0, 3.0, 0.5), (10.0, 2.0, 1.0)):
        n = int(run_ps / DT_PS)
        tr = amp * np.exp(-np.arange(n) * DT_PS / tau)
        xs = ar1(rng, m, n, 10.0) + tr
        es = rng.standard_normal((m, n)) + tr
        ds, t0 = [], []
        for x, e in zip(xs, es, strict=True):
            s = run_stats(x, e)
            ds.append(decide_series(s, 0.0, settings=SETTINGS))
            t0.append(s.t0_ps)
        row = {"case": f"AR(1) + transient {amp:g} sigma, tau {tau:g} ps, {run_ps:g} ps runs", "series": m,
               "coverage": rate([d.interval.low <= 0.0 <= d.interval.high for d in ds]),
               "wrong_at_threshold": rate([d.side is not Side.UNDECIDED for d in ds]),
               "mean_start_ps": float(np.mean(t0))}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def design_case(rng: np.random.Generator, m: int) -> list[dict]:
    """Why this rule: coverage of the "95 %" interval on AR(1) (g = 10) under three rules --
    the start chosen on the decided series itself with the normal z = 1.96 and the
    autocorrelation error alone (the rule this replaced); the start independent of the series
    with Student-t on the autocorrelation error alone; and the rule the checks use."""
    from scipy.stats import norm

    out = []
    z = float(norm.ppf(0.975))
    for n_eff in (10, 20, 30, 100):
        n = n_eff * 10
        xs = ar1(rng, m, n, 10.0)
        es = rng.standard_normal((m, n))
        old, acf_t, final = [], [], []
        for x, e in zip(xs, es, strict=True):
            so = statistics.series_statistics(x, "q", "", None, DT_PS)  # start detected on x itself
            old.append(abs(so.mean) <= z * so.sem_acf)
            sf = run_stats(x, e)
            acf_t.append(abs(sf.mean) <= statistics.t_quantile(0.975, max(sf.n_eff - 1, 1)) * sf.sem_acf)
            lo, hi = sf.interval(0.95)
            final.append(lo <= 0 <= hi)
        row = {"n_eff": n_eff, "series": m, "start_on_itself_z": rate(old), "independent_start_acf_t": rate(acf_t),
               "checks_rule": rate(final)}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def markdown(res: dict) -> str:
    lines = ["# Calibration of the dynamic checks' statistics", "",
             f"Command: `{res['command']}` ({res['seconds']:.0f} s of one core, summed over the commands).", "",
             "| case | series | coverage of the 95 % interval | wrong decisions, mean on the threshold | "
             "decided, mean half an interval away (wrong) |", "|---|---|---|---|---|"]
    for r in res["ar1"]:
        for label in [k for k in r if k == "single" or k.startswith("replicas")]:
            v = r[label]
            lines.append(f"| {r['case']}, {label} | {r['series']} | {v['coverage']:.3f} | "
                         f"{v['wrong_at_threshold']:.3f} | {v['decided_half_interval_away']:.3f} "
                         f"({v['wrong_half_interval_away']:.3f}) |")
    s = res["sequential"]
    lines += ["", f"Sequential schedule ({s['case']}, {s['series']} series, level per look "
              f"{100 * s['level_per_look']:.4g} %): wrong decisions per look "
              f"{', '.join(f'{x:.3f}' for x in s['wrong_per_look'])}; over the whole schedule "
              f"{s['wrong_over_schedule']:.3f}.", ""]
    z = res["sinusoid"]
    lines += [f"{z['case']} ({z['series']} series per window):", "", "| window | decided | coverage |", "|---|---|---|"]
    lines += [f"| {k} | {v['decided']:.4f} | {v['coverage']:.3f} |" for k, v in z["windows"].items()]
    if "sinusoid_replicas" in res:
        z = res["sinusoid_replicas"]
        lines += ["", f"{z['case']} ({z['series']} replica sets per window):", "", "| window | decided | coverage |",
                  "|---|---|---|"]
        lines += [f"| {k} | {v['decided']:.4f} | {v['coverage']:.3f} |" for k, v in z["windows"].items()]
    if "sinusoid_short" in res:
        z = res["sinusoid_short"]
        lines += ["", f"The same, sub-period windows only, more series ({z['series']} per window): "
                  + ", ".join(f"{k} decided {v['decided']:.4f} ({round(v['decided'] * z['series'])} of {z['series']})"
                              for k, v in z["windows"].items()) + "."]
    t, c = res["telegraph"], res["correlated_field"]
    lines += ["", f"{t['case']} ({t['series']} runs): decided non-polar {t['decided_nonpolar']:.3f}, polar "
              f"{t['decided_polar']:.3f}, undecided {t['undecided']:.3f}.", "",
              f"{c['case']} ({c['series']} runs of {c['frames']} frames; mean polar order {c['mean_polar_order']:.3f}, "
              f"threshold {c['polar_order_threshold']:.3f}): decided polar {c['decided_polar']:.3f}, cubic "
              f"{c['decided_cubic']:.3f}, undecided {c['undecided']:.3f}.", ""]
    a = res["analyze"]
    lines += [f"{a['case']} ({a['series']} files): same outcome as the direct path {a['same_outcome_as_direct']:.3f}, "
              f"coverage {a['coverage']:.3f}.", ""]
    if "transient" in res:
        lines += ["Equilibration transient in the series and the potential energy, true mean on the threshold:", "",
                  "| case | series | coverage of the 95 % interval | wrong decisions | mean start (ps) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['case']} | {r['series']} | {r['coverage']:.3f} | {r['wrong_at_threshold']:.3f} | "
                  f"{r['mean_start_ps']:.2f} |" for r in res["transient"]]
        lines += [""]
    if "design" in res:
        lines += ["Why this rule: coverage of the stated 95 % interval on AR(1) (g = 10) under three rules.", "",
                  "| n_eff | start chosen on the series itself, z, autocorrelation error | independent start, "
                  "Student-t, autocorrelation error | the checks' rule |", "|---|---|---|---|"]
        lines += [f"| {d['n_eff']} | {d['start_on_itself_z']:.3f} | {d['independent_start_acf_t']:.3f} | "
                  f"{d['checks_rule']:.3f} |" for d in res["design"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="series per case")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--out", default=str(HERE / "calibration"))
    ap.add_argument("--cases", default="ar1,sequential,sinusoid,telegraph,correlated_field,analyze",
                    help="comma-separated subset (the markdown table needs all)")
    ap.add_argument("--merge", action="store_true", help="add the cases to the results already in --out")
    ap.add_argument("--merge-from", default=None,
                    help="a results JSON written by another run (e.g. a parallel process): add its cases, then write")
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    cmd = "OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/calibrate_statistics.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    res: dict = {"command": cmd}
    if a.merge and Path(a.out + ".json").is_file():  # add cases to an earlier run's results
        res = json.loads(Path(a.out + ".json").read_text())
        res["command"] = f"{res['command']}; {cmd}"
        t0 -= res.get("seconds", 0.0)
    if a.merge_from:
        other = json.loads(Path(a.merge_from).read_text())
        res.update({k: v for k, v in other.items() if k not in ("command", "seconds")})
        res["command"] = f"{res['command']}; {other['command']}"
        res["seconds"] = res.get("seconds", 0.0) + other.get("seconds", 0.0)
        t0 -= other.get("seconds", 0.0)
        Path(a.out + ".json").write_text(json.dumps(res, indent=1))
    cases = {"ar1": lambda: ar1_cases(rng, a.n), "sequential": lambda: sequential_case(rng, a.n),
             "sinusoid": lambda: sinusoid_case(rng, a.n),
             "sinusoid_replicas": lambda: sinusoid_case(rng, a.n, replicas=3, windows=(3.0, 4.0, 6.0)),
             "sinusoid_short": lambda: sinusoid_case(rng, a.n, windows=(3.0, 4.0)),
             "telegraph": lambda: telegraph_case(rng, a.n),
             "correlated_field": lambda: correlated_field_case(rng, a.n),
             "analyze": lambda: analyze_cli_case(rng, min(a.n, 400)), "design": lambda: design_case(rng, a.n),
             "transient": lambda: transient_case(rng, a.n)}
    for name in [c for c in a.cases.split(",") if c]:
        res[name] = cases[name]()
        res["seconds"] = time.time() - t0
        Path(a.out + ".json").write_text(json.dumps(res, indent=1))  # what is done survives an interruption
    if set(cases) - {"design", "sinusoid_replicas", "transient", "sinusoid_short"} - set(res):
        return 0
    Path(a.out + ".md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
