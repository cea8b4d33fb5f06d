"""The conservation tier fails each flawed synthetic model on its own check and passes the
conservative one; its observables agree with ASE's own numerical helpers; velocity Verlet's
fluctuation scales as dt^2 under the stated bound; steps are found where they are and nowhere else."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pto_checks import conservation as cons
from pto_checks.models.synthetic import make

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = cons.ConservationSettings()


@pytest.fixture(scope="module")
def tier_results(tmp_path_factory):
    """The real check file, one pytest session over the conservative and the three flawed models."""
    import subprocess
    import sys

    d = tmp_path_factory.mktemp("conservation")
    (d / "test_conservation.py").write_text((ROOT / "pto_checks" / "checks" / "test_conservation.py").read_text())
    models = ["synthetic:md_polar", "synthetic:curl_force", "synthetic:cutoff_step", "synthetic:gpa_stress"]
    cmd = [sys.executable, "-m", "pytest", str(d / "test_conservation.py"), "-p", "no:cacheprovider", "-q",
           "-m", "conservation", f"--pto-cache={d / 'cache'}", f"--report={d / 'out'}", "--rootdir", str(d),
           *[f"--model={m}" for m in models]]
    proc = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=600)
    data = json.loads((d / "out" / "results.json").read_text())
    out = {}
    for m in models:
        checks = data["models"][m]["checks"]
        out[m] = {k.split("::")[-1].split("[")[0]: v for k, v in checks.items()}
    return proc, out, data


def _status(checks):
    return {k: v["status"] for k, v in checks.items()}


def test_conservative_model_passes_every_check(tier_results):
    _, res, data = tier_results
    assert set(_status(res["synthetic:md_polar"]).values()) == {"pass"}, _status(res["synthetic:md_polar"])
    q = data["models"]["synthetic:md_polar"]["quantities"]["conservation"]
    assert {"energy_force", "energy_stress", "energy_scans", "nve"} <= set(q)
    from pto_checks.protocols import get_protocol

    assert [r["target_K"] for r in q["nve"]["value"]] == [300.0, max(get_protocol("paper").md.temperatures_K)]


def test_curl_force_fails_energy_force_consistency_and_nve(tier_results):
    _, res, _ = tier_results
    st = _status(res["synthetic:curl_force"])
    assert st["test_energy_force_consistency"] == "fail" and st["test_nve_energy_conservation"] == "fail", st
    # energy and stress are the conservative network's: only the forces are wrong
    assert st["test_energy_stress_consistency"] == "pass" and st["test_smooth_energy_surface"] == "pass", st
    assert "NOT THE GRADIENT" in res["synthetic:curl_force"]["test_energy_force_consistency"]["message"]


def test_cutoff_step_fails_smoothness_naming_the_pair_and_cutoff(tier_results):
    _, res, _ = tier_results
    c = res["synthetic:cutoff_step"]["test_smooth_energy_surface"]
    assert c["status"] == "fail"
    msg = c["message"]
    # located to 1/16 of a grid interval (bisection), where the cubic Pb-O distance a/sqrt(2) = 2.80 A
    m = re.search(r"step of (-?[\d.]+) meV/f.u. along volume \(cubic\) at V/V0 - 1 ([\d.]+) -> ([\d.]+); "
                  r"O-O [\d.]+ -> [\d.]+ A crosses the 2.8 A cutoff \(O-Pb step term\), 12 pair\(s\)[^;]*; "
                  r"O-Pb [\d.]+ -> [\d.]+ A crosses the 2.8 A cutoff", msg)
    assert m, msg
    assert float(m.group(1)) == pytest.approx(-60.0, abs=0.5)  # 12 pairs x 5 meV
    v_step = (2.8 * 2**0.5 / 3.9217) ** 3 - 1
    assert float(m.group(2)) <= v_step <= float(m.group(3)) and float(m.group(3)) - float(m.group(2)) < 0.001


def test_gpa_stress_fails_energy_stress_naming_the_unit(tier_results):
    _, res, _ = tier_results
    st = _status(res["synthetic:gpa_stress"])
    assert st["test_energy_stress_consistency"] == "fail", st
    assert st["test_energy_force_consistency"] == "pass" and st["test_smooth_energy_surface"] == "pass", st
    assert "the stress is in GPa" in res["synthetic:gpa_stress"]["test_energy_stress_consistency"]["message"]


def test_numerical_stress_matches_ase():
    """Independent cross-check: ASE's own finite-difference stress on a strained, rattled cell."""
    atoms = cons.thermal_snapshot(SETTINGS)
    atoms.set_cell(atoms.cell.array @ np.array([[1.01, 0.004, 0], [0.004, 0.99, 0.003], [0, 0.003, 1.02]]),
                   scale_atoms=True)
    from ase.calculators.fd import calculate_numerical_stress

    calc = make("md_polar")
    ours = cons.numerical_stress_voigt(atoms, calc, 1e-4)
    work = atoms.copy()
    work.calc = calc
    ase_fd = calculate_numerical_stress(work, 1e-4, voigt=True)
    analytic = work.get_stress()
    np.testing.assert_allclose(ours, ase_fd, atol=1e-7)
    np.testing.assert_allclose(ours, analytic, atol=2e-6)


def test_curl_force_differs_from_ase_numeric_forces():
    """Independent cross-check of what the energy-force check measures: ASE's numerical gradient of the
    energy equals the conservative network's forces and not the curl model's."""
    from ase.calculators.fd import calculate_numerical_forces

    atoms = cons.thermal_snapshot(SETTINGS)[:40]
    for variant, equal in (("md_polar", True), ("curl_force", False)):
        a = atoms.copy()
        a.calc = make(variant)
        diff = np.abs(a.get_forces()[:5] - calculate_numerical_forces(a, 1e-4, iatoms=range(5))[:5]).max()
        assert bool(diff < 1e-5) is equal, (variant, diff)


def test_verlet_fluctuation_scales_as_dt_squared_below_the_bound():
    """The conservative synthetic model at 2 fs and 1 fs: fluctuation ratio ~4 (dt^2), both under the
    bound of reference_data (which scales the same way), no drift."""
    from pto_checks.reference import tolerance

    tol = tolerance("conservation_nve")
    calc, cell = make("md_polar"), cons.nve_cell(SETTINGS)
    runs = {dt: cons.analyse_nve(cons.nve_simulate(calc, cell, 300.0, dt, int(500 / dt), 1), tol["max_frequency_THz"],
                                 tol["fluctuation_margin"]) for dt in (2.0, 1.0)}
    ratio = runs[2.0].fluctuation_meV_per_atom / runs[1.0].fluctuation_meV_per_atom
    assert 3.5 < ratio < 4.5, ratio
    for r in runs.values():
        assert r.fluctuation_meV_per_atom < r.bound_meV_per_atom / 4
        assert abs(r.drift_meV_per_atom_per_ps) < 3 * r.drift_se_meV_per_atom_per_ps + 1e-3
    assert runs[2.0].bound_meV_per_atom / runs[1.0].bound_meV_per_atom == pytest.approx(4.0, rel=0.02)


def test_step_finder_locates_a_step_and_nothing_on_a_smooth_double_well():
    x = np.linspace(-0.25, 1.5, 25)
    well = 0.08 * (x**4 - 2 * x**2)  # eV/f.u.: an 80 meV/f.u. double well
    rng = np.random.default_rng(0)
    smooth = well + 1e-6 * rng.standard_normal(len(x))  # float32-like noise
    steps, res, _ = cons.find_steps(smooth, 0.5)
    assert steps == [] and np.abs(res[2:-2]).max() < 0.01 and np.abs(res).max() < 0.2  # ends: extrapolated
    stepped = smooth + np.where(np.arange(len(x)) > 13, 0.002, 0.0)  # +2 meV/f.u. from point 14 on
    steps, res, _ = cons.find_steps(stepped, 0.5)
    assert steps == [13] and res[13] == pytest.approx(2.0, abs=0.05)


def test_cutoff_crossings_name_the_pair():
    from pto_checks import structures

    a, b = structures.cubic(3.90), structures.cubic(3.98)  # Pb-O = O-O = a / sqrt(2): 2.758 -> 2.814 A
    lines = cons.cutoff_crossings(a, b, {"test": 2.8})
    assert any(line.startswith("O-Pb 2.7577 -> 2.8143 A crosses the 2.8 A cutoff (test), 12 pair(s)")
               for line in lines), lines
    assert cons.cutoff_crossings(a, b, {"test": 3.5}) == []
    assert cons.model_cutoffs(make("cutoff_step")) == {"O-Pb step term": 2.8}
