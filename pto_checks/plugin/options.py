"""The plugin's command-line options (``add_options``, called from ``pytest_addoption``)."""

from __future__ import annotations

import pytest

from pto_checks.executors import add_executor_options
from pto_checks.md.task import EngineName

DEFAULT_MODEL = "chgnet"


def add_options(parser: pytest.Parser) -> None:
    """The pto-checks command-line options (one group)."""
    group = parser.getgroup("pto-checks", "PbTiO3 model validation")
    group.addoption("--model", action="append", default=[], metavar="NAME",
                    help="model(s) to check: registered names, comma lists, 'all' (every model "
                         "that loads here; others skipped), or FAMILY:PATH forms. Default: the models of "
                         "--model-file, else chgnet")
    group.addoption("--model-file", action="append", default=[], metavar="TOML",
                    help="register models from a TOML file ([models.NAME] tables); without --model, "
                         "check them")
    group.addoption("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="device for the models (default: auto = cuda if available)")
    group.addoption("--protocol", default="paper", help="protocol: paper, quick or smoke (default paper)")
    group.addoption("--report", default=None, metavar="DIR",
                    help="write DIR/results.json (and per-model files such as phonon bands)")
    group.addoption("--pto-cache", default=None, metavar="DIR",
                    help="cache of expensive results (default: pytest's cache dir, so --cache-dir "
                         "moves it and --cache-clear empties it)")
    group.addoption("--recompute", "--rerun-md", action="store_true", dest="recompute",
                    help="ignore cached relaxations/phonons/MD and compute again")
    group.addoption("--protocol-set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="override a protocol field, e.g. md.steps=2000, md.temperatures_K=300,700,1000, "
                         "md.supercell=3, md.timestep_fs=1, md.seed=7 (recorded in the results)")
    group.addoption("--npt-integrator", action="append", default=[], choices=["melchionna", "mtk"],
                    help="NPT integrator(s): melchionna (ASE NPT, the study's; default) and/or mtk "
                         "(ASE MaskedMTKNPT); give twice to compare")
    group.addoption("--engine", default="auto", choices=[e.value for e in EngineName],
                    help="MD engine: ase (reference, one temperature at a time), batched (all temperatures "
                         "and both ensembles of a sweep in one model call per step, on the model's device), "
                         "auto (default: batched on a GPU for models with a device-side interface "
                         "(CHGNet, SevenNet, MACE, DeePMD, M3GNet), else ase). Chosen per task: a task the "
                         "batched engine has no integrator for (NPT mtk) runs on ase")
    add_executor_options(group.addoption)
    group.addoption("--bench-sizes", default="1,2,3,4,5,6,7,8,9,10", metavar="N,N,...",
                    help="benchmark: supercell sizes n (n x n x n, 5 n^3 atoms)")
    group.addoption("--bench-replicas", type=int, default=8, metavar="N",
                    help="benchmark: replicas advanced together in the batched-engine benchmark (default 8)")
    group.addoption("--bench-budget", type=float, default=300.0, metavar="SECONDS",
                    help="benchmark: time budget per model; larger sizes are skipped past it")
    group.addoption("--list-models", action="store_true", help="list registered models and exit")
    group.addoption("--compare", default=None, metavar="OLD.json",
                    help="with --report: mark verdicts that changed and quantities that moved since OLD.json")
    group.addoption("--baseline", default=None, metavar="FILE",
                    help="CI gate: accepted results; checks that failed there are strict xfails, and "
                         "quantities must not move beyond the regression thresholds")
    group.addoption("--allow-protocol-change", action="store_true",
                    help="with --baseline: gate although this run's protocol differs from the baseline's (the "
                         "differing fields are printed in the terminal summary and the report). Without it such "
                         "a run is refused before any work: a loosened protocol must not pass a gate unseen")
    group.addoption("--inconclusive", default=None, choices=["fail", "warn"],
                    help="whether an inconclusive check (its confidence interval contains the threshold, "
                         "or the run is too short or not equilibrated) fails the run: fail (default for "
                         "the paper and quick protocols) or warn (default for smoke; a protocol changed "
                         "with --protocol-set keeps its own). Never counted as a pass, also with --baseline")
    group.addoption("--update-baseline", action="store_true",
                    help="write this run's results to --baseline FILE (accept them)")
