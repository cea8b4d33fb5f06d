"""0 K structure checks (marker ``static``): relaxed tetragonal and cubic PbTiO3.

Study protocol: FrechetCellFilter + BFGS to fmax 1e-3 eV/A of the PBEsol tetragonal and cubic
cells (P4mm and Pm-3m held with FixSymmetry, cells made exactly tetragonal/cubic); a, c, c/a with
the long axis found; dE = E(cubic) - E(tetragonal) per formula unit.  The unconstrained relaxation
from a perturbed P4mm cell is a check of its own (does the model keep P4mm?).
"""

import pytest

from pto_checks import verdicts

pytestmark = pytest.mark.static


def test_relaxation_converged(model, ground_state, check):
    """Both relaxations reach fmax before the step cap (else the numbers below are unreliable)."""
    tet, cub = ground_state["relax_tetragonal"], ground_state["relax_cubic"]
    ok = tet["converged"] and cub["converged"]
    check(verdicts.check_bound(
        "relaxation_converged", ok,
        f"tetragonal: {tet['steps']} steps, final fmax {tet['final_fmax_eV_per_A']:.2e} eV/A; "
        f"cubic: {cub['steps']} steps, final fmax {cub['final_fmax_eV_per_A']:.2e} eV/A "
        f"(target {tet['fmax_eV_per_A']}, cap {tet['max_steps']} steps)"
        + ("" if ok else ": STEP CAP HIT"),
        {"tetragonal": tet, "cubic": cub}))


def test_tetragonality_vs_pbesol(model, ground_state, check):
    """c/a of the relaxed polar cell matches PBEsol (1.08)."""
    check(verdicts.against_reference("tetragonality_vs_pbesol", "c_over_a", ground_state["c_over_a"],
                                     "pbesol", model.spec.functional, "c/a", "", "c_over_a"))


def test_tetragonality_vs_experiment(model, ground_state, check):
    """c/a of the relaxed polar cell matches experiment (1.06, Mabud & Glazer 1979)."""
    check(verdicts.against_reference("tetragonality_vs_experiment", "c_over_a",
                                     ground_state["c_over_a"], "experiment", model.spec.functional,
                                     "c/a", "", "c_over_a"))


def test_lattice_a_vs_experiment(model, ground_state, check):
    """In-plane lattice constant a matches experiment (3.90 A)."""
    check(verdicts.against_reference("lattice_a_vs_experiment", "a", ground_state["a"], "experiment",
                                     model.spec.functional, "a", "Angstrom", "lattice_a"))


def test_keeps_p4mm(model, ground_state, check):
    """Relaxed without any constraint from a perturbed P4mm cell, the model does not gain more than
    1 meV/f.u. by breaking the symmetry (space groups at the harness's symprec reported)."""
    check(verdicts.keeps_p4mm(ground_state["symmetry"], model.spec.functional))


def test_ground_state_is_polar(model, ground_state, check):
    """The tetragonal (polar) phase lies below the cubic one and stays tetragonal."""
    check(verdicts.polar_ground_state(ground_state["delta_e"], ground_state["c_over_a"],
                                      model.spec.functional))


def test_delta_e_vs_pbesol(model, ground_state, check):
    """E(cubic) - E(tetragonal) per formula unit matches PBEsol (0.08 eV/f.u.)."""
    check(verdicts.against_reference("delta_e_vs_pbesol", "delta_e", ground_state["delta_e"],
                                     "pbesol", model.spec.functional, "dE(cubic - tetragonal)",
                                     "eV/f.u.", "delta_e"))
