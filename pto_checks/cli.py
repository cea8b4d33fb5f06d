"""``pto-checks`` console command.

    pto-checks models [--model-file F.toml]    registered models and their specs
    pto-checks run [--env KEY=PATH] [PYTEST ARGS...]
                                                run the physical checks (works from any directory),
                                                each model in the environment that has its family
                                                (results merged into --report DIR)
    pto-checks report RESULTS.json... -o DIR    rebuild the HTML/Markdown report from saved results
                      [--compare OLD.json]      ... marking what changed since OLD.json
    pto-checks verify out/results.json          exit 1 if the file is missing or malformed, records
                                                no check, decided none (all skipped/inconclusive),
                                                or any check ended in an error (failed verdicts
                                                are accepted: they are results; inconclusive ones
                                                are listed with what would decide them)
    pto-checks nightly DIR [--protocol quick] [-n N] [--model all] [--baseline B.json]
                      [--fail-on-verdict]       every model that loads, results + report in
                                                DIR/<UTC time>/, compared with the previous run.
                                                Exit 0: completed, report written (failed verdicts
                                                are results); 3: errors; 2: regressions against
                                                --baseline; 1: failed verdicts (--fail-on-verdict)
    pto-checks analyze FILE... [--threshold NAME=VALUE] [--json] [--ensemble npt|nvt]
                                                verdict statistics of an MD run made elsewhere
                                                (extxyz trajectory, or CSV 'time_ps,<quantity>,...'):
                                                mean, interval, level, n_eff, equilibrated start and
                                                the outcome against each threshold, by the checks'
                                                rule; exit 4 on a file it cannot read
    pto-checks cluster-script --cluster slurm --queue Q --walltime T [--gpus-per-job 1] ...
                                                print the batch job script that --cluster would
                                                submit (dask-jobqueue); nothing is submitted
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from pto_checks import models
from pto_checks.results import load


def _models(args: argparse.Namespace) -> int:
    for f in args.model_file or []:
        models.load_model_file(f)
    print(f"{'name':16s} {'family':9s} {'version':20s} {'trained on':10s} weights")
    for name in models.available_names(include_hidden=True):
        s = models.get_spec(name)
        print(f"{s.name:16s} {s.family:9s} {s.version:20s} {s.functional:10s} {s.weights_source}")
    print("also: mace:PATH deepmd:PATH orb:PATH sevennet:PATH m3gnet:PATH gptff:PATH "
          "ase:module:callable synthetic:VARIANT")
    return 0


def _verify(args: argparse.Namespace) -> int:
    try:
        data = load(args.results)
    except (OSError, ValueError) as exc:
        print(f"pto-checks verify: {exc}", file=sys.stderr)
        return 1
    try:
        from pto_checks.results import validate

        validate(data)
    except ImportError:
        pass  # jsonschema (the test extra) not installed: the version check above stands
    except Exception as exc:  # jsonschema.ValidationError
        print(f"pto-checks verify: {args.results} does not match results.schema.json: "
              f"{str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    policy = args.inconclusive or data.get("harness", {}).get("inconclusive_policy") or "fail"
    bad, undecided, total = [], [], Counter()
    for name, entry in data["models"].items():
        counts = Counter(c["status"] for c in entry["checks"].values())
        total.update(counts)
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        bad += [f"{name} {tid}: {c['message'][:300]}" for tid, c in entry["checks"].items()
                if c["status"] == "error"]
        undecided += [f"{name} {tid}: {c.get('needs') or c['message'].splitlines()[0][:300]}"
                      for tid, c in entry["checks"].items() if c["status"] == "inconclusive"]
    if not total:
        print("pto-checks verify: no check recorded", file=sys.stderr)
        return 1
    executed = sum(n for status, n in total.items() if status != "skip")
    if not executed:
        print(f"pto-checks verify: no check was executed (all {total['skip']} skipped): nothing was "
              "verified; see the skip reasons in the file", file=sys.stderr)
        return 1
    if undecided:  # never a pass: counted with the failed verdicts (fail) or listed as warnings (warn)
        how = ("counted as failed verdicts" if policy == "fail" else "warnings, not failing the run")
        print(f"inconclusive ({how}; --inconclusive={policy}):\n  " + "\n  ".join(undecided))
    if bad:
        print("pto-checks verify: checks ended in errors:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    if not (total["pass"] + total["fail"]):
        print("pto-checks verify: no check was decided (every check skipped or inconclusive)", file=sys.stderr)
        return 1
    return 0


def checks_dir() -> Path:
    """Folder of the physical check files: shipped in the wheel, or ``tests/`` of a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "checks", here.parent / "tests"):
        if (candidate / "test_static.py").is_file():
            return candidate
    raise FileNotFoundError("pto-checks' check files are missing: reinstall pto-checks")


def _pytest_cmd(python: str, cache: str, extra: list[str]) -> list[str]:
    folder = checks_dir()
    ignore = ["--ignore", str(folder / "harness")] if (folder / "harness").is_dir() else []
    return [python, "-m", "pytest", str(folder), "--rootdir", str(folder), "-p", "no:cacheprovider",
            *ignore, "--pto-cache", str(Path(cache).resolve()), *extra]


def _split_models(extra: list[str]) -> tuple[list[str], list[str], str | None, list[str]]:
    """(--model values, --model-file values, --report DIR, the other pytest arguments)."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--model", action="append", default=[])
    p.add_argument("--model-file", action="append", default=[])
    p.add_argument("--report", default=None)
    known, rest = p.parse_known_args(extra)
    return known.model, known.model_file, known.report, rest


def _run(args: argparse.Namespace) -> int:
    """Run pytest on the check files, each model in the environment that has its family.

    Models whose families live in one environment run in one pytest process; with more than one
    environment (or one other than this interpreter's) each runs in its own and the results are
    merged into ``--report DIR`` (one results.json and report, each model's environment recorded).
    """
    import subprocess

    from pto_checks import environments as envs

    extra = list(args.pytest_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    names, model_files, report_dir, rest = _split_models(extra)
    overrides = dict(kv.split("=", 1) for kv in getattr(args, "env", None) or [])
    for kv in overrides:
        if kv not in envs.LAYOUT:
            print(f"pto-checks run: --env {kv}=...: unknown environment; known: {', '.join(envs.LAYOUT)}",
                  file=sys.stderr)
            return 4
    for f in model_files:
        models.load_model_file(f)
    explicit = [n.strip() for raw in (names or ["chgnet"]) for n in raw.split(",") if n.strip()]
    groups: dict[str, list[str]] = {}
    missing: list[tuple[str, str, bool]] = []
    pythons: dict[str, Path] = {}
    for name in explicit:
        try:
            specs = models.specs_for([name])
        except models.ModelUnavailable as exc:
            print(f"pto-checks run: {exc}", file=sys.stderr)
            return 4
        for spec in specs:
            key = envs.env_key(spec)
            py = pythons.get(key) or envs.find_python(key, overrides)
            if py is None:
                missing.append((spec.name, f"environment {envs.LAYOUT[key][0]} not found: "
                                f"{envs.install_command(spec)} (or --env {key}=PATH)", name != "all"))
                continue
            pythons[key] = py
            groups.setdefault(key, [])
            if spec.name not in groups[key]:
                groups[key].append(spec.name)
    for model, line, _ in missing:
        print(f"pto-checks run: model {model!r} skipped: {line}")
    mf = [a for f in model_files for a in ("--model-file", str(Path(f).resolve()))]
    if len(groups) <= 1 and not missing and all(envs.same_interpreter(p) for p in pythons.values()):
        return subprocess.run(_pytest_cmd(sys.executable, args.cache, extra)).returncode
    return _run_environments(args.cache, groups, pythons, missing, mf, report_dir, rest)


def _run_environments(cache: str, groups: dict[str, list[str]], pythons: dict[str, Path],
                      missing: list[tuple[str, str, bool]], mf: list[str], report_dir: str | None,
                      rest: list[str]) -> int:
    """One pytest process per environment; results merged into ``report_dir`` (with the results
    already there: results accumulate, as in a single pytest run)."""
    import subprocess
    import tempfile

    from pto_checks import environments as envs
    from pto_checks.results import already_there, merge

    out = Path(report_dir) if report_dir else Path(tempfile.mkdtemp(prefix="pto-checks-run-"))
    prior, unreadable = already_there(out / "results.json")
    if unreadable:
        print(f"pto-checks run: WARNING: {unreadable}", file=sys.stderr)
    codes, parts, described, where = [], [], {}, {}
    for key, names in groups.items():
        env = envs.Environment.describe(key, pythons[key])
        part_dir = out / "environments" / key
        cmd = _pytest_cmd(str(pythons[key]), cache, [*rest, *mf, *(a for n in names for a in ("--model", n)),
                                                      "--report", str(part_dir)])
        print(f"== pto-checks run: {', '.join(names)} in {env.prefix} (python {env.python_version})", flush=True)
        rc = subprocess.run(cmd).returncode
        codes.append(rc)
        described[key] = {**env.__dict__, "models": names, "exit_status": rc, "command": " ".join(cmd)}
        try:
            part = load(part_dir / "results.json")
        except (OSError, ValueError) as exc:
            print(f"pto-checks run: no results from environment {key} ({exc})", file=sys.stderr)
            continue
        where.update({name: {"key": key, "python": env.python, "packages": env.packages}
                      for name in part.get("models", {})})
        parts.append(part)
    data = merge(([prior] if prior else []) + parts)
    for name, env_info in where.items():
        data["models"][name]["environment"] = env_info
    data["environments"] = {**(prior or {}).get("environments", {}), **described}
    data["unavailable"] = [{"model": m, "reason": line} for m, line, _ in missing]
    rc = max(codes, default=0)
    if any(explicit for _, _, explicit in missing):
        rc = max(rc, 4)
    data.setdefault("harness", {})["exit_status"] = rc
    data["harness"]["command"] = " ".join(sys.argv)
    _write_json(out / "results.json", data)
    from pto_checks import report

    compare = argparse.ArgumentParser(add_help=False)
    compare.add_argument("--compare", default=None)
    previous = compare.parse_known_args(rest)[0].compare
    html = report.build_report(data, out, load(previous) if previous else None)
    print(f"merged results of {len(parts)} environment(s): {out / 'results.json'}; report {html}")
    return rc


def _write_json(path: Path, data: dict) -> None:
    import json
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def _report(args: argparse.Namespace) -> int:
    from pto_checks import report
    from pto_checks.results import merge

    data = merge([load(p) for p in args.results])
    previous = load(args.compare) if args.compare else None
    html = report.build_report(data, args.output, previous)
    print(f"report written to {html}")
    return 0


# ``pto-checks nightly`` exit codes: a failed verdict is a result, not a broken job
NIGHTLY_OK, NIGHTLY_FAILED_VERDICTS, NIGHTLY_REGRESSIONS, NIGHTLY_ERRORS = 0, 1, 2, 3


def default_cache() -> Path:
    """The cache a plain ``pytest`` run from this directory uses (pytest's cache folder,
    ``.pytest_cache/d/pto-checks``), so ``pto-checks nightly`` reuses what such runs computed."""
    return Path.cwd() / ".pytest_cache" / "d" / "pto-checks"


def nightly_outcome(data: dict | None, pytest_rc: int, baseline: dict | None,
                    fail_on_verdict: bool) -> tuple[int, list[str]]:
    """Exit code of a nightly run and the reasons: errors (pytest could not run or finish, no
    results or report, a check that errored) > regressions against ``baseline`` (a check that
    passed there fails now, or a regression check failed: a quantity moved beyond tolerance) >
    failed verdicts (only with ``fail_on_verdict``) > 0."""
    if data is None:
        return NIGHTLY_ERRORS, [f"no results were written (pytest exit status {pytest_rc})"]
    if pytest_rc not in (0, 1):
        return NIGHTLY_ERRORS, [f"pytest exit status {pytest_rc} (interrupted, usage or internal error)"]
    checks = [(m, tid, c) for m, e in data["models"].items() for tid, c in e.get("checks", {}).items()]
    errors = [f"{m} {tid}: error: {c.get('message', '').splitlines()[0][:200] if c.get('message') else ''}"
              for m, tid, c in checks if c["status"] == "error"]
    if errors:
        return NIGHTLY_ERRORS, errors
    if baseline is not None:
        regressions = []
        for m, tid, c in checks:
            before = baseline.get("models", {}).get(m, {}).get("checks", {}).get(tid, {}).get("status")
            if c["status"] == "fail" and (before == "pass" or "regression" in c.get("markers", [])):
                regressions.append(f"{m} {tid}: {before or 'new'} -> fail")
        if regressions:
            return NIGHTLY_REGRESSIONS, regressions
    failed = [f"{m} {tid}: fail" for m, tid, c in checks if c["status"] == "fail" and not c.get("gate")]
    if fail_on_verdict and failed:
        return NIGHTLY_FAILED_VERDICTS, failed
    return NIGHTLY_OK, []


def _nightly(args: argparse.Namespace) -> int:
    import datetime as dt

    root = Path(args.dir)
    out = root / dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    runs = sorted(p for p in root.glob("*/results.json") if p.parent != out)
    extra = ["-m", args.marker, "--protocol", args.protocol, "--report", str(out)]
    for m in args.model or ["all"]:
        extra += ["--model", m]
    for f in args.model_file or []:
        extra += ["--model-file", f]
    if args.workers:
        extra += ["-n", str(args.workers)]
    baseline = None
    if args.baseline:
        try:
            baseline = load(args.baseline)
        except (OSError, ValueError) as exc:
            print(f"pto-checks nightly: --baseline {args.baseline}: {exc}", file=sys.stderr)
            return NIGHTLY_ERRORS
        extra += ["--baseline", args.baseline]
    if runs:
        extra += ["--compare", str(runs[-1])]
        print(f"comparing with {runs[-1]}")
    cache = Path(args.cache) if args.cache else default_cache()
    print(f"MD and relaxation cache: {cache}")
    rc = _run(argparse.Namespace(pytest_args=extra, cache=str(cache), env=args.env))
    data = None
    if (out / "results.json").is_file() and (out / "report.html").is_file():
        try:
            data = load(out / "results.json")
        except (OSError, ValueError) as exc:
            print(f"pto-checks nightly: {exc}", file=sys.stderr)
    code, reasons = nightly_outcome(data, rc, baseline, args.fail_on_verdict)
    what = {NIGHTLY_OK: "completed", NIGHTLY_FAILED_VERDICTS: "failed verdicts (--fail-on-verdict)",
            NIGHTLY_REGRESSIONS: "regressions against the baseline", NIGHTLY_ERRORS: "errors"}[code]
    print(f"nightly results and report in {out}: {what} (exit {code})")
    for r in reasons[:50]:
        print(f"  {r}")
    return code


def _cluster_script(args: argparse.Namespace) -> int:
    from pto_checks.executors import executor_settings
    from pto_checks.executors.clusters import ClusterSettings, job_script

    settings = executor_settings(vars(args).get)
    try:
        cs = ClusterSettings.from_settings(settings)
        script = job_script(cs)
    except (OSError, ValueError, ImportError) as exc:
        print(f"pto-checks cluster-script: {exc}", file=sys.stderr)
        return 2
    print(script)
    print(f"# {cs.jobs} such job(s) would be kept running ({cs.processes} worker(s) each); "
          f"start them with: pto-checks run --cluster {cs.kind} --jobs {cs.jobs} ...", file=sys.stderr)
    return 0


def _analyze(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from pto_checks.analyze import AnalyzeError, analyze_file, format_result, parse_thresholds

    try:
        thresholds = parse_thresholds(args.threshold)
        results = [analyze_file(f, thresholds, args.ensemble, args.production_fraction, args.frame_interval_ps,
                                args.supercell) for f in args.files]
    except AnalyzeError as exc:
        print(f"pto-checks analyze: {exc}", file=sys.stderr)
        return 4
    if args.json:
        def clean(x):
            if isinstance(x, float) and x != x:
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x

        print(json.dumps([clean(asdict(r)) for r in results], indent=1))
    else:
        print("\n".join(format_result(r) for r in results))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pto-checks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--model-file", action="append")
    p.set_defaults(fn=_models)
    p = sub.add_parser("verify", help="check a results.json for errors (failed verdicts are fine; "
                                      "inconclusive checks are listed, never counted as passes)")
    p.add_argument("results")
    p.add_argument("--inconclusive", choices=["fail", "warn"], default=None,
                   help="how inconclusive checks are listed (default: the policy the run recorded)")
    p.set_defaults(fn=_verify)
    p = sub.add_parser("run", help="run the physical checks with pytest (arguments go to pytest)")
    p.add_argument("--cache", default=".pto_cache", help="cache folder (default .pto_cache)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=PATH",
                   help="environment of a family group (main, m3gnet, gptff, deepmd-tf): venv or python")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    p.set_defaults(fn=_run)
    p = sub.add_parser("report", help="build the HTML/Markdown report from results files")
    p.add_argument("results", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--compare", help="previous results.json: mark what changed")
    p.set_defaults(fn=_report)
    p = sub.add_parser("nightly", help="every model that loads, through a protocol, compared with last night")
    p.add_argument("dir")
    p.add_argument("--protocol", default="quick")
    p.add_argument("--model", action="append", default=[], help="default: all")
    p.add_argument("-m", dest="marker", default="sanity or static or phonon or dynamic")
    p.add_argument("-n", dest="workers", type=int, default=0, help="pytest-xdist workers")
    p.add_argument("--model-file", action="append", default=[], help="register models from a TOML file")
    p.add_argument("--baseline", help="accepted results: a check that passed there and fails now, or a "
                                      "quantity that moved beyond tolerance, exits 2")
    p.add_argument("--fail-on-verdict", action="store_true",
                   help="exit 1 when a verdict fails (default: failed verdicts are results, exit 0)")
    p.add_argument("--cache", default=None,
                   help="MD and relaxation cache (default: pytest's, .pytest_cache/d/pto-checks here, shared with "
                        "plain pytest runs; keep it between nights: resumable)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=PATH",
                   help="environment of a family group (main, m3gnet, gptff, deepmd-tf): venv or python")
    p.set_defaults(fn=_nightly)
    p = sub.add_parser("analyze", help="verdict statistics of an MD run made elsewhere (extxyz or CSV)")
    p.add_argument("files", nargs="+")
    p.add_argument("--threshold", action="append", default=[], metavar="NAME=VALUE",
                   help="a threshold for a quantity (repeatable), e.g. c_over_a=1.01")
    p.add_argument("--json", action="store_true", help="one JSON list (a result per file, in order) on stdout")
    p.add_argument("--ensemble", choices=["npt", "nvt"], default=None,
                   help="the phase rule to apply (default: npt when the cell changes, else nvt)")
    p.add_argument("--production-fraction", type=float, default=0.5,
                   help="without a potential energy to detect equilibration on: the fraction kept (default 0.5)")
    p.add_argument("--frame-interval-ps", type=float, default=None,
                   help="time between extxyz frames when they carry no time_ps")
    p.add_argument("--supercell", type=int, default=None,
                   help="L of a CSV run's L x L x L cells (enables the per-frame polar rules from 3^3 up)")
    p.set_defaults(fn=_analyze)
    p = sub.add_parser("cluster-script", help="print the batch job script of --cluster (dask-jobqueue)")
    from pto_checks.executors import add_cluster_options

    add_cluster_options(p.add_argument)
    p.set_defaults(fn=_cluster_script)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:  # everything after 'run' belongs to pytest (except --cache)
        run_parser = argparse.ArgumentParser(prog="pto-checks run", add_help=False)
        run_parser.add_argument("--cache", default=".pto_cache")
        run_parser.add_argument("--env", action="append", default=[])
        known, rest = run_parser.parse_known_args(argv[1:])
        return _run(argparse.Namespace(cache=known.cache, env=known.env, pytest_args=rest))
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
