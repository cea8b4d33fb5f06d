"""CI gate: measured quantities must not move beyond the regression thresholds of the baseline
(``--baseline FILE``; thresholds and reasoning in reference_data/pto.toml [regression])."""

import pytest

from pto_checks import verdicts

pytestmark = pytest.mark.regression


@pytest.mark.static
def test_ground_state_unchanged_vs_baseline(model, ground_state, pto_baseline, check):
    """a, c, c/a and dE match the baseline's within the regression thresholds."""
    check(verdicts.unchanged_vs_baseline(model.name, pto_baseline, {
        f"ground_state.{k}": (ground_state[k], 0.0) for k in ("a", "c", "c_over_a", "delta_e")}))


@pytest.mark.dynamic
@pytest.mark.npt
def test_npt_sweep_unchanged_vs_baseline(model, npt_sweep, npt_integrator, pto_baseline, check):
    """Tc and the lowest-temperature c/a match the baseline's within their uncertainty."""
    from pto_checks.report import _gs_quantities

    key = f"md.npt_{npt_integrator}."
    current = {k: v for k, v in _gs_quantities({"quantities": {"md": {f"npt_{npt_integrator}": {"value": {
        "rows": [{k2: v2 for k2, v2 in r.items()} for r in npt_sweep["rows"]], "tc": npt_sweep["tc"]}}}}}).items()
        if k.startswith(key)}
    check(verdicts.unchanged_vs_baseline(model.name, pto_baseline, current))
