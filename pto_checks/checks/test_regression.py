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
    from pto_checks.results import sweep_quantities

    current = sweep_quantities(f"npt_{npt_integrator}", npt_sweep["rows"], npt_sweep["tc"])
    check(verdicts.unchanged_vs_baseline(model.name, pto_baseline, current))
