"""Which Python environment runs which model family (the install layout of ``scripts/install.sh``).

Some families cannot share one environment (M3GNet's DGL needs torch 2.2, GPTFF pins ase < 3.29,
frozen DeePMD ``.pb`` graphs need TensorFlow), so ``pto-checks run`` sends each model to the
environment that has its family and merges the results. An environment is found, in order, from
``--env KEY=PATH``, the variable ``PTO_CHECKS_ENV_<KEY>`` (KEY upper-cased, ``-`` -> ``_``), or the
layout below in the checkout (or the current directory); PATH is a virtualenv folder or a
``python`` executable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pto_checks.models.base import ModelSpec
from pto_checks.models.families import ENVIRONMENTS, FAMILIES, environment_of, install_target

# environment key -> (virtualenv folder of the install layout, install.sh arguments that build it)
LAYOUT: dict[str, tuple[str, str]] = {e.key: (e.folder, e.default_install) for e in ENVIRONMENTS.values()
                                      if e.routed}


def env_key(spec: ModelSpec) -> str:
    """The environment a model runs in: its family's, or another for some model files (a frozen ``.pb``
    DeePMD graph runs in TensorFlow's)."""
    return environment_of(spec.family, dict(spec.options))


def install_command(spec: ModelSpec) -> str:
    return f"bash scripts/install.sh {install_target(spec.family, dict(spec.options))}"


def _roots() -> list[Path]:
    here = Path(__file__).resolve().parents[1]
    roots = [Path.cwd()]
    if (here / "scripts" / "install.sh").is_file():
        roots.append(here)
    return roots


def _python_of(path: str | os.PathLike[str]) -> Path | None:
    p = Path(path)
    if p.is_dir():
        p = p / "bin" / "python"
    return p if p.is_file() and os.access(p, os.X_OK) else None


def find_python(key: str, overrides: dict[str, str] | None = None) -> Path | None:
    """The interpreter of environment ``key`` (None when it is not installed)."""
    overrides = overrides or {}
    if key in overrides:
        return _python_of(overrides[key])
    var = "PTO_CHECKS_ENV_" + key.upper().replace("-", "_")
    if os.environ.get(var):
        return _python_of(os.environ[var])
    folder = LAYOUT[key][0]
    for root in _roots():
        if (py := _python_of(root / folder)) is not None:
            return py
    if key == "main":  # no .venv: the interpreter running this command
        return Path(sys.executable)
    return None


def same_interpreter(python: Path) -> bool:
    """True when ``python`` is the interpreter of the running environment."""
    return Path(sys.prefix).resolve() == (python.parent.parent).resolve()


_DESCRIBE = (
    "import sys, json, importlib.metadata as m\n"
    "names = json.loads(sys.argv[1])\n"
    "def v(d):\n"
    "    try: return m.version(d)\n"
    "    except Exception: return None\n"
    "print(json.dumps({'python': sys.executable, 'prefix': sys.prefix, 'python_version': sys.version.split()[0],"
    " 'packages': {d: x for d in names if (x := v(d)) is not None}}))\n"
)
PACKAGES = list(dict.fromkeys(["pto-checks", "torch", "ase", "numpy", "phonopy",
                               *(d for f in FAMILIES.values() for d in f.dists), "tensorflow-cpu", "tensorflow"]))


@dataclass
class Environment:
    """One interpreter of the run and what it has (recorded in results.json)."""

    key: str
    python: str
    prefix: str = ""
    python_version: str = ""
    packages: dict[str, str] = field(default_factory=dict)

    @classmethod
    def describe(cls, key: str, python: Path) -> Environment:
        out = subprocess.run([str(python), "-c", _DESCRIBE, json.dumps(PACKAGES)], capture_output=True,
                             text=True, check=True)
        d = json.loads(out.stdout)
        return cls(key, d["python"], d["prefix"], d["python_version"], d["packages"])
