"""Each physical check passes on a sound model and FAILS on a model that is wrong in that way.

The real check files (pto_checks/checks/test_*.py) run under pytester against the synthetic calculators
(:mod:`pto_checks.models.synthetic`); results.json must record a failed verdict (``fail``), never
an ``error``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

CHECK_FILES = ("test_static.py", "test_phonons.py", "test_sanity.py")


@pytest.fixture
def run_checks(pytester, check_files):
    check_files(*CHECK_FILES)

    def run(model: str, marker: str = "sanity or static or phonon", *args: str):
        report = pytester.path / "out"
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--model={model}",
                                    f"--pto-cache={pytester.path / 'cache'}", f"--report={report}",
                                    "-m", marker, *args)
        data = json.loads((report / "results.json").read_text())
        entry = data["models"].get(model, {"checks": {}})
        checks = {k.split("::")[-1]: v for k, v in entry["checks"].items()}
        return result, checks, data

    return run


def test_sound_model_passes_everything(run_checks):
    result, checks, data = run_checks("synthetic:good")
    statuses = {k: v["status"] for k, v in checks.items()}
    assert statuses.pop("test_reference_energies") == "skip"
    assert set(statuses.values()) == {"pass"}, statuses
    q = data["models"]["synthetic:good"]["quantities"]
    assert q["ground_state"]["c_over_a"]["value"] == pytest.approx(1.084, abs=1e-3)
    assert q["ground_state"]["delta_e"]["unit"] == "eV/f.u."
    assert "fingerprint" in data["models"]["synthetic:good"]["spec"]
    assert result.ret == 0


@pytest.mark.parametrize(
    ("variant", "marker", "must_fail"),
    [
        ("paraelectric", "static", {"test_ground_state_is_polar", "test_tetragonality_vs_pbesol",
                                    "test_tetragonality_vs_experiment"}),
        ("supertetragonal", "static", {"test_tetragonality_vs_pbesol", "test_tetragonality_vs_experiment"}),
        ("compressed", "static", {"test_lattice_a_vs_experiment"}),
        ("shallow", "static", {"test_delta_e_vs_pbesol"}),
        ("unstable", "phonon", {"test_no_imaginary_modes"}),
        ("zone_unstable", "phonon", {"test_no_imaginary_modes"}),
        ("soft_shear", "phonon", {"test_no_imaginary_modes"}),
        ("metastable_p4mm", "static", {"test_keeps_p4mm"}),
        ("gpa_stress", "sanity", {"test_stress_in_ase_units"}),
        ("not_invariant", "sanity", {"test_translation_invariance"}),
        ("nan", "sanity", {"test_forces_finite"}),
    ],
)
def test_flawed_model_fails_the_right_check(run_checks, variant, marker, must_fail):
    result, checks, _ = run_checks(f"synthetic:{variant}", marker)
    failed = {k for k, v in checks.items() if v["status"] == "fail"}
    assert must_fail <= failed, {k: v["status"] for k, v in checks.items()}
    for name in must_fail:
        msg = checks[name]["message"]
        assert msg and "model trained on" in msg or name.startswith("test_") and msg
    assert "error" not in {checks[n]["status"] for n in must_fail}
    assert result.ret == 1


def test_metastable_p4mm_passes_only_with_the_symmetry_held(run_checks):
    """P4mm is a local minimum of this model, not its ground state: with P4mm held its phonons are
    real, and keeps_p4mm is what fails; had the harness not held P4mm (the unconstrained cell),
    the phonons are imaginary (exact, at M)."""
    _, held, _ = run_checks("synthetic:metastable_p4mm", "static or phonon")
    assert held["test_no_imaginary_modes"]["status"] == "pass"
    assert held["test_keeps_p4mm"]["status"] == "fail"
    assert "meV/f.u." in held["test_keeps_p4mm"]["message"]
    _, free, _ = run_checks("synthetic:metastable_p4mm", "phonon", "--protocol-set=static.hold_symmetry=false")
    assert free["test_no_imaginary_modes"]["status"] == "fail"
    msg = free["test_no_imaginary_modes"]["message"]
    assert "decided by the 2x2x2 supercell" in msg and "exact" in msg


def test_zone_unstable_fails_exact_in_the_first_supercell(run_checks):
    _, checks, data = run_checks("synthetic:zone_unstable", "phonon")
    msg = checks["test_no_imaginary_modes"]["message"]
    assert "IMAGINARY MODE" in msg and "decided by the 2x2x2 supercell" in msg and "exact" in msg
    out = Path(data["models"]["synthetic:zone_unstable"]["quantities"]["phonons"]["files"]["value"]["phonopy_params"])
    import phonopy

    ph = phonopy.load(out)  # force constants included: no forces needed
    assert ph.force_constants is not None and ph.force_constants.shape[1] == 40  # 2x2x2 x 5 atoms


def test_weak_instability_near_gamma_is_what_an_exclusion_rule_would_hide():
    """ORB-like (the study: imaginary modes below 20 cm^-1 near, not at, Gamma): every mode below
    zero is in the lowest (acoustic) branch, weak (-0.11 THz), at q the 2x2x2 and 3x3x3 supercells
    only interpolate; Gamma and the zone boundary are real.  The old rule (three lowest branches
    excluded by value) passes it (the next test: the harness fails it)."""
    from pto_checks import phonons, structures
    from pto_checks.models.synthetic import make

    res = phonons.compute_phonons(structures.tetragonal(), make("soft_shear"), supercell=(2, 2, 2))
    step = phonons.judge(res)
    assert step.worst_exact is None and -0.3 < step.worst.f_thz < -0.05  # weak, only interpolated
    assert {m.branch for m in step.below} == {0}
    _, f = res.all_q_and_freq()
    assert np.sort(f, axis=1)[:, 3:].min() > 0  # the old exclusion rule: "no imaginary modes"


def test_weak_instability_near_gamma_fails(run_checks):
    """The harness escalates to 4x4x4, where q = 1/4 is exact, and fails."""
    _, checks, data = run_checks("synthetic:soft_shear", "phonon")
    msg = checks["test_no_imaginary_modes"]["message"]
    assert "IMAGINARY MODE" in msg and "decided by the 4x4x4 supercell" in msg and "exact" in msg, msg
    # without the 4x4x4 supercell the dip is recomputed exactly at its own q (a 1x5x1 supercell, q = 1/5)
    _, checks, _ = run_checks("synthetic:soft_shear", "phonon", "--protocol-set=phonon.escalation=3")
    msg = checks["test_no_imaginary_modes"]["message"]
    assert checks["test_no_imaginary_modes"]["status"] == "fail"
    assert "recomputed exactly with a 1x5x1 supercell" in msg and "(0.000, 0.200, 0.000)" in msg, msg
    # and without that, the exact long-wavelength probe: C66 < 0
    _, checks, _ = run_checks("synthetic:soft_shear", "phonon", "--protocol-set=phonon.escalation=3",
                              "--protocol-set=phonon.exact_probe_max_atoms=0")
    msg = checks["test_no_imaginary_modes"]["message"]
    assert checks["test_no_imaginary_modes"]["status"] == "fail"
    # (C66 = -0.7 GPa: the Christoffel test decides only beyond its 1 GPa margin; the dip persists)
    assert "decided by the 3x3x3 supercell" in msg and "the instability persists" in msg, msg
    assert "lowest Christoffel eigenvalue -0.7 GPa" in msg and "Born criteria violated: C66 > 0" in msg, msg


def test_failure_message_states_value_reference_tolerance_functional(run_checks):
    result, checks, _ = run_checks("synthetic:supertetragonal", "static")
    msg = checks["test_tetragonality_vs_pbesol"]["message"]
    for piece in ("c/a = 1.2", "reference 1.0840", "PBEsol DFT", "tolerance 0.03", "trained on PBEsol"):
        assert piece in msg
    result.stdout.fnmatch_lines(["*tetragonality_vs_pbesol*c/a = 1.2*"])


def test_cache_hit_on_rerun(run_checks):
    run_checks("synthetic:good", "static")
    _, _, data = run_checks("synthetic:good", "static")
    assert data["models"]["synthetic:good"]["checks"]


def test_unknown_model_is_a_usage_error(pytester):
    pytester.makepyfile(test_x="def test_x(model): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=chgnett")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no such model*Registered:*chgnet*"])


def test_named_model_that_cannot_load_is_an_error(pytester, tmp_path):
    pytester.makepyfile(test_x="def test_x(model): pass")
    (tmp_path / "none.pth").write_bytes(b"not a frozen model")  # exists (a missing file is refused at start-up)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--model=deepmd:{tmp_path}/none.pth")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*models that could not load*", "*none.pth*"])
    missing = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--model=deepmd:{tmp_path}/missing.pth")
    assert missing.ret == 4 and "missing.pth: no such file" in missing.stderr.str()


def test_xdist_workers_merge_into_one_results_file(run_checks):
    pytest.importorskip("xdist")
    _, _, data = run_checks("synthetic:good,synthetic:compressed", "static", "-n", "2")
    assert set(data["models"]) == {"synthetic:good", "synthetic:compressed"}
    assert all(len(m["checks"]) == 7 for m in data["models"].values())  # the static checks
