"""Accuracy tier (marker ``accuracy``): the model against PBEsol ab initio MD frames of PbTiO3.

The cheapest early warning: energies, forces and stresses on the very configurations that
finite-temperature MD visits (40-atom cells at 300, 450 and 900 K), before any MD is run. Limits
and their physical reasoning: ``reference_data/pto.toml`` ``[tolerances.accuracy_*]``.
"""

import pytest

from pto_checks import verdicts
from pto_checks.reference import tolerance

pytestmark = pytest.mark.accuracy


def _rows(tier):
    return [r.errors.to_dict() for r in tier.results]


def _context(tier):
    return dict(functional=tier.functional, data_functional=tier.data_functional, subsample=tier.subsample,
                reduced=tier.reduced)


def _properties(record_property, tier, keys):
    for r in tier.results:
        for k in keys:
            record_property(f"{k}_{r.frames.temperature_K}K", round(float(getattr(r.errors, k)), 6))
    record_property("functional", f"model {tier.functional}, frames {tier.data_functional}")
    record_property("subsample", tier.subsample)


def test_force_error_vs_dft_force_scale(accuracy_tier, check, record_property):
    """Force RMSE at most a fraction of the DFT force rms at each temperature."""
    tol = tolerance("accuracy_forces")
    rows = _rows(accuracy_tier)
    limit = {int(r["temperature_K"]): tol["value"] * r["dft_force_rms_eV_A"] for r in rows}
    _properties(record_property, accuracy_tier, ("force_rmse_eV_A", "force_mae_eV_A", "dft_force_rms_eV_A"))
    check(verdicts.accuracy_bound("accuracy_forces", rows, "force_rmse_eV_A", "force_rmse_se_eV_A", limit, "eV/A",
                                  "force RMSE", scale_key="dft_force_rms_eV_A", source=tol["source"],
                                  n_eff_key="force_rmse_n_eff",
                                  **_context(accuracy_tier)))


def test_relative_energy_error(accuracy_tier, check, record_property):
    """Relative-energy RMSE well below the ferroelectric well depth (16 meV/atom, PBEsol)."""
    tol = tolerance("accuracy_energy")
    _properties(record_property, accuracy_tier, ("energy_rmse_meV_atom", "energy_mae_meV_atom"))
    check(verdicts.accuracy_bound("accuracy_energy", _rows(accuracy_tier), "energy_rmse_meV_atom",
                                  "energy_rmse_se_meV_atom", tol["value"], "meV/atom", "relative energy RMSE",
                                  scale_key="dft_energy_std_meV_atom", source=tol["source"],
                                  n_eff_key="energy_rmse_n_eff",
                                  **_context(accuracy_tier)))


def test_stress_error(accuracy_tier, check, record_property):
    """Stress RMSE below the pressure that moves c/a by half the tetragonal threshold."""
    tol = tolerance("accuracy_stress")
    _properties(record_property, accuracy_tier, ("stress_rmse_GPa", "stress_offset_GPa"))
    check(verdicts.accuracy_bound("accuracy_stress", _rows(accuracy_tier), "stress_rmse_GPa", "stress_rmse_se_GPa",
                                  tol["value"], "GPa", "stress RMSE", scale_key="dft_stress_std_GPa",
                                  source=tol["source"], n_eff_key="stress_rmse_n_eff", **_context(accuracy_tier)))

