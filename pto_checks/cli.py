"""``pto-checks`` console command.

    pto-checks models [--model-file F.toml]    registered models and their specs
    pto-checks run [PYTEST ARGS...]             run the physical checks (works from any directory)
    pto-checks report RESULTS.json... -o DIR    rebuild the HTML/Markdown report from saved results
                      [--compare OLD.json]      ... marking what changed since OLD.json
    pto-checks verify out/results.json          exit 1 if the file is missing or malformed, records
                                                no check, executed none (all skipped), or any check
                                                ended in an error (failed verdicts are accepted:
                                                they are results)
    pto-checks nightly DIR [--protocol quick] [-n N] [--model all]
                                                every model that loads, results + report in
                                                DIR/<UTC time>/, compared with the previous run
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
    bad, total = [], Counter()
    for name, entry in data["models"].items():
        counts = Counter(c["status"] for c in entry["checks"].values())
        total.update(counts)
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        bad += [f"{name} {tid}: {c['message'][:300]}" for tid, c in entry["checks"].items()
                if c["status"] == "error"]
    if not total:
        print("pto-checks verify: no check recorded", file=sys.stderr)
        return 1
    executed = sum(n for status, n in total.items() if status != "skip")
    if not executed:
        print(f"pto-checks verify: no check was executed (all {total['skip']} skipped): nothing was "
              "verified; see the skip reasons in the file", file=sys.stderr)
        return 1
    if bad:
        print("pto-checks verify: checks ended in errors:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    return 0


def checks_dir() -> Path:
    """Folder of the physical check files: shipped in the wheel, or ``tests/`` of a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "checks", here.parent / "tests"):
        if (candidate / "test_static.py").is_file():
            return candidate
    raise FileNotFoundError("pto-checks' check files are missing: reinstall pto-checks")


def _run(args: argparse.Namespace) -> int:
    """Run pytest on the check files in a fresh interpreter (no state shared with the caller)."""
    import subprocess

    folder = checks_dir()
    extra = list(args.pytest_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    ignore = ["--ignore", str(folder / "harness")] if (folder / "harness").is_dir() else []
    cmd = [sys.executable, "-m", "pytest", str(folder), "--rootdir", str(folder), "-p", "no:cacheprovider",
           *ignore, "--pto-cache", str(Path(args.cache).resolve()), *extra]
    return subprocess.run(cmd).returncode


def _report(args: argparse.Namespace) -> int:
    from pto_checks import report
    from pto_checks.results import merge

    data = merge([load(p) for p in args.results])
    previous = load(args.compare) if args.compare else None
    html = report.build_report(data, args.output, previous)
    print(f"report written to {html}")
    return 0


def _nightly(args: argparse.Namespace) -> int:
    import datetime as dt

    root = Path(args.dir)
    out = root / dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    runs = sorted(p for p in root.glob("*/results.json") if p.parent != out)
    extra = ["-m", args.marker, "--protocol", args.protocol, "--report", str(out)]
    for m in args.model or ["all"]:
        extra += ["--model", m]
    if args.workers:
        extra += ["-n", str(args.workers)]
    if runs:
        extra += ["--compare", str(runs[-1])]
        print(f"comparing with {runs[-1]}")
    ns = argparse.Namespace(pytest_args=extra, cache=args.cache)
    rc = _run(ns)
    print(f"nightly results and report in {out}")
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pto-checks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--model-file", action="append")
    p.set_defaults(fn=_models)
    p = sub.add_parser("verify", help="check a results.json for errors (failed verdicts are fine)")
    p.add_argument("results")
    p.set_defaults(fn=_verify)
    p = sub.add_parser("run", help="run the physical checks with pytest (arguments go to pytest)")
    p.add_argument("--cache", default=".pto_cache", help="cache folder (default .pto_cache)")
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
    p.add_argument("--cache", default=".pto_cache", help="MD cache (keep it between nights: resumable)")
    p.set_defaults(fn=_nightly)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:  # everything after 'run' belongs to pytest (except --cache)
        run_parser = argparse.ArgumentParser(prog="pto-checks run", add_help=False)
        run_parser.add_argument("--cache", default=".pto_cache")
        known, rest = run_parser.parse_known_args(argv[1:])
        return _run(argparse.Namespace(cache=known.cache, pytest_args=rest))
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
