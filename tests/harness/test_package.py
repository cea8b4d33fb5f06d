"""The checks as a package: ``pytest --pyargs pto_checks.checks`` from any folder, the reference data
inside the package, and ``--model-file`` alone checking the file's models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pto_checks.cli import checks_dir
from pto_checks.reference import reference_dir
from tests.harness.small_models import synthetic_model_file

ROOT = Path(__file__).resolve().parents[2]


def _pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=300)


def test_checks_and_reference_data_live_in_the_package():
    import pto_checks

    package = Path(pto_checks.__file__).parent
    assert checks_dir() == package / "checks" and (checks_dir() / "__init__.py").is_file()
    assert reference_dir() == package / "reference_data" and (reference_dir() / "pto.toml").is_file()
    shipped = {p.name for p in checks_dir().glob("test_*.py")}
    assert {"test_sanity.py", "test_static.py", "test_phonons.py", "test_dynamic.py", "test_engines.py",
            "test_accuracy.py", "test_regression.py", "test_speed.py"} <= shipped
    # nothing is force-included from outside the package: the wheel is the package
    assert "force-include" not in (ROOT / "pyproject.toml").read_text()


def test_pyargs_collects_the_shipped_checks_from_an_empty_folder(tmp_path):
    r = _pytest_in(tmp_path, "--pyargs", "pto_checks.checks", "--collect-only", "-q", "-m", "static",
                   "--model=synthetic:good")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "test_static.py::test_ground_state_is_polar[synthetic:good]" in r.stdout


def test_model_file_alone_checks_the_models_of_the_file(tmp_path):
    models = synthetic_model_file(tmp_path, "good")
    r = _pytest_in(tmp_path, "--pyargs", "pto_checks.checks", "--collect-only", "-q", "-m", "static",
                   "--model-file", str(models))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[my-model]" in r.stdout and "[chgnet]" not in r.stdout


def test_library_modules_never_import_the_pytest_layer():
    """pytest, the plugin and the checks are imported only by the pytest layer itself (the plugin,
    the checks); the library (stages, verdicts, reports, adapters...) runs without pytest."""
    import ast

    package = ROOT / "pto_checks"
    layer = ("pto_checks.plugin", "pto_checks.pytest_plugin", "pto_checks.checks")
    offenders = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if module.startswith(layer):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{module} imports {n}" for n in names if n.split(".")[0] in ("pytest", "_pytest")
                          or n.startswith(layer)]
    assert not offenders, offenders
