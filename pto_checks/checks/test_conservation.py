"""Conservation tier (marker ``conservation``): can the model's MD conserve energy at all?

Cheap checks on 5-atom cells and a 40-atom thermal snapshot, before any finite-temperature verdict:
forces are the gradient of the energy, stress its strain derivative, the energy surface has no steps
(a cutoff without a smooth envelope), and velocity Verlet conserves the energy.  Library:
:mod:`pto_checks.conservation`; limits and their reasoning: ``reference_data/pto.toml
[tolerances.conservation_*]``.
"""

import pytest

from pto_checks import conservation

pytestmark = pytest.mark.conservation


def test_energy_force_consistency(model, energy_force_paths, check):
    """Along random smooth paths the energy change equals minus the work of the forces."""
    check(conservation.force_verdict(energy_force_paths, model.spec.functional))


def test_energy_stress_consistency(model, energy_stress_cells, check):
    """The stress equals (1/V) dE/d(strain) (central differences, six strains) on the cells MD explores."""
    check(conservation.stress_verdict(energy_stress_cells, model.spec.functional))


def test_smooth_energy_surface(model, energy_surface, check):
    """No energy step along c, volume or the polar mode (named by the pair crossing a cutoff there)."""
    check(conservation.smoothness_verdict(energy_surface, model.spec.functional,
                                          conservation.model_cutoffs(model.calculator)))


def test_nve_energy_conservation(model, nve_runs, check):
    """Velocity Verlet at 2 fs: no drift, and a fluctuation within the dt^2 bound, at 300 K and the top
    of the temperature grid."""
    check(conservation.nve_verdict(nve_runs, model.spec.functional))
