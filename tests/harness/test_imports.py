"""No import cycles in pto_checks: every module imports on its own in a fresh interpreter, and the
package's internal import graph (module-level and deferred imports alike) is acyclic."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "pto_checks"
MODULES = sorted(".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
                 for p in PKG.rglob("*.py"))


def _graph() -> dict[str, set[str]]:
    """Module -> pto_checks modules it imports (anywhere in the file: deferred imports count too)."""
    graph = {}
    for mod in MODULES:
        path = PKG.parent / (mod.replace(".", "/") + ".py")
        if not path.is_file():
            path = PKG.parent / mod.replace(".", "/") / "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pto_checks"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in MODULES else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("pto_checks")}
        graph[mod] = {d for d in deps if d in MODULES and d != mod}
    return graph


def test_import_graph_is_acyclic():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            if d.startswith(m + "."):  # a package importing its own submodule is not a cycle
                continue
            if state.get(d) == 1:
                pytest.fail(f"import cycle: {' -> '.join(path + [m, d])}")
            if state.get(d) is None:
                visit(d, path + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("pto_checks.md")
                                    or m in ("pto_checks.stages", "pto_checks.neighbors",
                                             "pto_checks.models.batched", "pto_checks.pytest_plugin")])
def test_module_imports_alone(module):
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=PKG.parent,
                   env={"PYTHONPATH": str(PKG.parent), "PATH": ""})
