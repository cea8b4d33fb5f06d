"""Which checks run and how they count: equivalence only when asked, regression checks only with
a baseline, baseline failures as strict xfails, and the all-skipped rule (a gate must not pass by
skipping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pto_checks.plugin.session import session_state
from pto_checks.results import status_of


def test_id_of(item: pytest.Item) -> str:
    """Stable id of a check in results.json: ``file.py::test_name`` (+ ``[mtk]`` for MTK NPT)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    tid = f"{Path(str(item.path)).name}::{getattr(item, 'originalname', item.name)}"
    integrator = params.get("npt_integrator")
    if integrator and integrator != "melchionna":
        tid += f"[{integrator}]"
    return tid


def _deselect(config: pytest.Config, items: list[pytest.Item], drop) -> None:
    keep = [i for i in items if not drop(i)]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if drop(i)])
        items[:] = keep


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # engine equivalence runs both engines on both ensembles: only when -m names it
    if "equivalence" not in (config.getoption("markexpr", "") or ""):
        _deselect(config, items, lambda i: i.get_closest_marker("equivalence") is not None)
    st = session_state(config)
    baseline = st and st.baseline
    if not baseline:  # regression checks only mean something against a baseline
        _deselect(config, items, lambda i: i.get_closest_marker("regression") is not None)
        return
    for item in items:
        name = getattr(getattr(item, "callspec", None), "params", {}).get("model_name")
        chk = baseline.get("models", {}).get(name, {}).get("checks", {}).get(test_id_of(item)) if name else None
        if chk and status_of(chk) == "fail":  # from the verdict, never the file's word alone
            first = (chk.get("message") or "").splitlines()
            item.add_marker(pytest.mark.xfail(
                strict=True,
                reason=f"failed in the baseline ({first[0][:200] if first else 'no message'}); an "
                       "unexpected pass means the model improved: accept it with --update-baseline"))
