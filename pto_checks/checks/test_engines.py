"""Engine equivalence (marker ``equivalence``): the batched MD engine against the ASE engine.

For each model and the chosen protocol, both engines run the NPT and NVT sweeps (each cached on
its own); per temperature the phase must be the same and c/a and |P| must agree within the
statistical error (``reference_data/pto.toml``, ``tolerances.engine_equivalence``).
"""

import pytest

from pto_checks import analysis, verdicts

pytestmark = pytest.mark.equivalence  # runs only when -m names it (not under -m npt / nvt / dynamic)


def _check(engine_sweeps, check, ensemble: str, integrator: str) -> None:
    ref, new = engine_sweeps(ensemble, integrator)
    verdict = verdicts.engines_agree(ref, new, ensemble)
    verdict.message += (f"\nASE engine:\n{analysis.format_table(ref)}"
                        f"\nbatched engine:\n{analysis.format_table(new)}")
    check(verdict)


def test_batched_engine_matches_ase_npt(model, engine_sweeps, check):
    """NPT (Melchionna): the batched engine reproduces the ASE engine's c/a, |P| and phase."""
    _check(engine_sweeps, check, "npt", "melchionna")


def test_batched_engine_matches_ase_nvt(model, engine_sweeps, check):
    """NVT (Langevin): the batched engine reproduces the ASE engine's c/a, |P| and phase."""
    _check(engine_sweeps, check, "nvt", "langevin")
