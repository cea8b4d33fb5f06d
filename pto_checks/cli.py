"""``pto-checks`` console command: list models, verify a results file.

    pto-checks models [--model-file F.toml]   registered models and their specs
    pto-checks verify out/results.json         exit 1 if the file is missing or malformed, records
                                               no check, or any check ended in an error (failed
                                               verdicts are accepted: they are results)
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

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
    if bad:
        print("pto-checks verify: checks ended in errors:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    return 0


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
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
