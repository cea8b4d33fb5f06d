"""MD stage: observables, phases, Tc, verdicts on tables, checkpoint/resume, and each dynamic
check shown to fail on a synthetic model that is wrong in that way."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pto_checks import analysis, structures, verdicts
from pto_checks.md import ASEEngine, MDTask
from pto_checks.models.synthetic import make
from pto_checks.protocols import PROTOCOLS, apply_overrides, get_protocol

ROOT = Path(__file__).resolve().parents[2]


# --- polarization ------------------------------------------------------------------------------

def test_polarization_of_reference_cells():
    t = structures.supercell(structures.tetragonal(a=3.90, c=4.15), 3)
    p = analysis.polarization(t.positions, t.cell.array, (3, 3, 3))
    assert p["P"][:2] == pytest.approx([0, 0], abs=1e-12)
    assert 0.8 < p["P"][2] < 1.3  # C/m^2; experiment 0.75-0.9, DFT displacements give ~1.1
    assert p["local_abs"] == pytest.approx(abs(p["P"][2]))
    c = structures.supercell(structures.cubic(3.9), 2)
    assert np.allclose(analysis.polarization(c.positions, c.cell.array, (2, 2, 2))["P"], 0, atol=1e-12)
    assert np.allclose(analysis.born_charge_tensors().sum(axis=0), 0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(shift=st.tuples(*[st.floats(-20, 20)] * 3), rattle_seed=st.integers(0, 100))
def test_polarization_independent_of_origin_and_wrapping(shift, rattle_seed):
    at = structures.supercell(structures.tetragonal(a=3.90, c=4.15), 2, 3, 2)
    at.rattle(0.05, seed=rattle_seed)
    p0 = analysis.polarization(at.positions, at.cell.array, (2, 3, 2))
    moved = at.copy()
    moved.positions += np.array(shift)
    moved.wrap()
    p1 = analysis.polarization(moved.positions, moved.cell.array, (2, 3, 2))
    assert np.allclose(p0["P"], p1["P"], atol=1e-9)
    assert p0["local_abs"] == pytest.approx(p1["local_abs"])


def test_inverting_the_polar_displacement_flips_pz():
    at = structures.supercell(structures.tetragonal(a=3.90, c=4.15), 2)
    flipped = at.copy()
    flipped.positions[:, 2] *= -1
    flipped.wrap()
    pz0 = analysis.polarization(at.positions, at.cell.array, (2, 2, 2))["P"][2]
    pz1 = analysis.polarization(flipped.positions, flipped.cell.array, (2, 2, 2))["P"][2]
    assert pz1 == pytest.approx(-pz0)


def test_order_metrics_separate_crystal_from_liquid():
    at = structures.supercell(structures.tetragonal(a=3.90, c=4.15), 3)
    at.rattle(0.1, seed=1)
    crystal = analysis.order_metrics(at.positions, at.cell.array, (3, 3, 3))
    rng = np.random.default_rng(0)
    liquid_pos = rng.uniform(0, 1, size=(len(at), 3)) @ at.cell.array
    liquid = analysis.order_metrics(liquid_pos, at.cell.array, (3, 3, 3))
    from pto_checks.reference import tolerance

    melt = tolerance("melting")
    assert crystal["lindemann"] < melt["max_lindemann"] < liquid["lindemann"]
    assert crystal["order"] > melt["min_order"] > liquid["order"]


def test_block_average():
    m, e = analysis.block_average(np.arange(100.0), 5)
    assert m == pytest.approx(49.5) and e > 0
    assert np.isnan(analysis.block_average([], 5)[0])


# --- phases, Tc and verdicts on tables ---------------------------------------------------------

def _row(t, ca, p=0.0, lind=0.05, order=1.0, failure=None):
    # a row with statistics (small errors, n_eff 100): decided as its means say
    from tests.harness.test_decisions import _row as row_with_stats

    return row_with_stats(t, ca, p=p, lind=lind, order=order, failure=failure)


def _sweep(rows, ensemble="npt"):
    from pto_checks import phase

    rows = phase.classify_rows(rows, ensemble)
    return {"rows": rows, "tc": phase.sweep_tc(rows, ensemble), "ensemble": ensemble, "integrator": "melchionna",
            "protocol": PROTOCOLS["paper"], "table": analysis.format_table(rows)}


def test_sound_transition_passes_the_npt_checks():
    s = _sweep([_row(t, ca) for t, ca in [(300, 1.06), (400, 1.055), (500, 1.05), (600, 1.04),
                                          (700, 1.03), (800, 1.002), (900, 1.001), (1000, 1.0)]])
    assert s["tc"]["tc"] == 750 and s["tc"]["resolution"] == 50
    for fn in (verdicts.no_melting_or_instability, verdicts.polar_at_low_temperature,
               verdicts.cubic_above_tc, verdicts.no_supertetragonal, verdicts.tc_vs_experiment):
        v = fn(s, "PBEsol")
        assert v.passed, v.message


def test_sound_polarization_passes_the_nvt_checks():
    # Pz lost between 900 and 1100 K: inside the study's NVT band [840, 1250] K
    s = _sweep([_row(t, 1.064, p) for t, p in [(300, 0.8), (700, 0.6), (900, 0.5), (1100, 0.05),
                                              (1300, 0.03)]], "nvt")
    for fn in (verdicts.no_melting_or_instability, verdicts.polar_at_low_temperature,
               verdicts.polarization_vanishes):
        assert fn(s, "PBEsol").passed


@pytest.mark.parametrize(("rows", "check"), [
    ([(300, 1.06), (600, 1.0), (1000, 1.03)], verdicts.cubic_above_tc),  # re-entrant
    ([(300, 1.06), (400, 1.0), (1000, 1.0)], verdicts.tc_vs_experiment),  # Tc 350 K: too low
    ([(300, 1.06), (1000, 1.05)], verdicts.tc_vs_experiment),  # no transition
    ([(300, 1.25), (1000, 1.24)], verdicts.no_supertetragonal),  # supertetragonal to the top
])
def test_wrong_tables_fail(rows, check):
    v = check(_sweep([_row(t, ca) for t, ca in rows]), "PBE")
    assert not v.passed and "T (K)" in v.message


def test_molten_and_unstable_rows():
    s = _sweep([_row(300, 1.06), _row(700, 1.0, lind=0.4, order=0.2),
                _row(1000, 1.0, failure={"step": 12, "reason": "non-finite energy or forces"})])
    v = verdicts.no_melting_or_instability(s, "PBE")
    assert not v.passed and "MOLTEN at 700 K" in v.message and "UNSTABLE at 1000 K" in v.message
    assert "step 12" in v.message


def test_reduced_protocol_says_so():
    s = _sweep([_row(300, 1.06), _row(1000, 1.0)])
    s["protocol"] = get_protocol("smoke")
    assert "REDUCED protocol 'smoke'" in verdicts.cubic_above_tc(s, "PBE").message


def test_protocol_overrides():
    p = apply_overrides(get_protocol("paper"), ["md.steps=100", "md.temperatures_K=300,900",
                                                "md.npt_integrator=mtk", "md.seed=3"])
    assert (p.md.steps, p.md.temperatures_K, p.md.npt_integrator, p.md.seed) == (100, (300, 900), "mtk", 3)
    assert p.reduced and p.name == "paper+custom" and p.to_dict()["overrides"]
    with pytest.raises(ValueError):
        apply_overrides(p, ["md.nope=1"])


# --- engine: blow-ups, reproducibility, resume -------------------------------------------------

def _task(ensemble="npt", integrator="melchionna", steps=120, temperature=600.0, seed=5):
    p = PROTOCOLS["smoke"].md
    return MDTask(ensemble, integrator, temperature, 2, p.start_a, p.start_c, steps, 2.0, seed, p.ttime_fs,
                  p.pfactor_ase, p.mtk_tdamp_fs, p.mtk_pdamp_fs, p.friction_per_fs, 5, 4, 20)


def test_blowup_is_a_result_not_a_crash(tmp_path):
    res = ASEEngine().run(_task(), make("nan"), tmp_path / "w")
    assert res["failure"]["step"] == 0 and "non-finite" in res["failure"]["reason"]


def test_same_seed_same_trajectory(tmp_path):
    a = ASEEngine().run(_task(), make("md_polar"), tmp_path / "a")
    b = ASEEngine().run(_task(), make("md_polar"), tmp_path / "b")
    assert a["samples"] == b["samples"]
    c = ASEEngine().run(_task(seed=6), make("md_polar"), tmp_path / "c")
    assert a["samples"] != c["samples"]


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize(("ensemble", "integrator"), [("npt", "melchionna"), ("npt", "mtk"),
                                                      ("nvt", "langevin")])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, ensemble, integrator):
    """An interrupt (SIGINT in real life) after a checkpoint; the rerun resumes and ends identically."""
    task = _task(ensemble, integrator)
    ref = ASEEngine().run(task, make("md_polar"), tmp_path / "ref")

    def stop_at_70(step, row, final):
        if step == 70:
            raise _Interrupt

    work = tmp_path / "int"
    with pytest.raises(_Interrupt):
        ASEEngine().run(task, make("md_polar"), work, progress=stop_at_70)
    assert (work / "checkpoint.npz").is_file()
    resumed = ASEEngine().run(task, make("md_polar"), work)
    assert resumed["samples"] == ref["samples"]
    assert len(resumed["frames"]) == len(ref["frames"])


KILL_SCRIPT = """
import sys, time
from pathlib import Path
from pto_checks.cache import Cache
from pto_checks.models import load_model
from pto_checks.protocols import get_protocol, apply_overrides
from pto_checks import stages

class Slow:
    def __init__(self, calc): self.calc = calc
model = load_model("synthetic:md_polar", "cpu")
orig = model.calculator.calculate
def slow(*a, **k):
    time.sleep(float(sys.argv[2]))
    return orig(*a, **k)
model.calculator.calculate = slow
proto = apply_overrides(get_protocol("smoke"), ["md.temperatures_K=600", "md.steps=200",
                                                "md.checkpoint_every=20"])
engine = sys.argv[3] if len(sys.argv) > 3 else "ase"
rows = stages.md_sweep(model, proto, Cache(sys.argv[1]), "npt", "melchionna", engine=engine, progress=False)
print(rows[0]["c_over_a"], rows[0]["Pz"], rows[0]["cache_hit"])
"""


@pytest.mark.parametrize("engine", ["ase", "batched"])
def test_sigkill_during_md_then_resume(tmp_path, engine):
    """SIGKILL a worker mid-run; the next run resumes from the checkpoint and ends like an
    uninterrupted run (either engine)."""
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    clean = subprocess.run([sys.executable, str(script), str(tmp_path / "ref"), "0", engine], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "killed"), "0.01", engine], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    md_dir = tmp_path / "killed" / "md"
    deadline = time.time() + 60
    while time.time() < deadline and not list(md_dir.glob("*.partial/checkpoint.npz")):
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(md_dir.glob("*.partial/checkpoint.npz")), "no checkpoint before the kill"
    resumed = subprocess.run([sys.executable, str(script), str(tmp_path / "killed"), "0", engine], env=env,
                             capture_output=True, text=True, check=True).stdout.split()
    assert resumed[:2] == clean[:2] and resumed[2] == "False"
    again = subprocess.run([sys.executable, str(script), str(tmp_path / "killed"), "0", engine], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    assert again[2] == "True"


# --- each dynamic check fails on a model wrong in that way (the real check file) ---------------

@pytest.fixture
def run_dynamic(pytester, check_files):
    check_files("test_dynamic.py")

    def run(model: str, *args: str):
        report = pytester.path / "out"
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--model={model}", "--protocol=smoke",
                                               f"--pto-cache={pytester.path / 'cache'}", f"--report={report}",
                                               *args)
        data = json.loads((report / "results.json").read_text())
        checks = {k.split("::")[-1]: v for k, v in data["models"][model]["checks"].items()}
        return result, checks, data

    return run


#: MD steps (2 fs) per temperature at which the synthetic MD models' checks are decided
DECISIVE_STEPS = 1500


@pytest.mark.parametrize(("variant", "must_fail", "must_pass"), [
    ("md_polar", {"test_cubic_above_tc", "test_tc_vs_experiment", "test_polarization_vanishes_above_tc"},
     {"test_npt_no_melting_or_instability", "test_tetragonal_at_300K", "test_no_supertetragonal_phase",
      "test_nvt_no_melting_or_instability", "test_polar_at_300K"}),
    ("md_cubic", {"test_polar_at_300K", "test_polarization_vanishes_above_tc"}, set()),  # never polar: no loss
    ("md_supertetragonal", {"test_no_supertetragonal_phase"}, set()),
    ("liquid", {"test_npt_no_melting_or_instability", "test_nvt_no_melting_or_instability"}, set()),
    ("nan", {"test_npt_no_melting_or_instability", "test_nvt_no_melting_or_instability"}, set()),
])
def test_dynamic_check_fails_on_flawed_model(run_dynamic, variant, must_fail, must_pass):
    # 0.3 ps (smoke) decides none of them (inconclusive: test_smoke_length_is_inconclusive_not_fail);
    # 3 ps does (a few seconds of CPU per temperature on these synthetic models)
    steps = 2 * DECISIVE_STEPS if variant == "md_cubic" else DECISIVE_STEPS  # its NVT Lindemann drifts longer
    # md_polar never loses Pz: the sweep must reach past the NVT band's top (1250 K) for that to fail
    grid = ("--protocol-set=md.temperatures_K=300,1300",) if variant == "md_polar" else ()
    result, checks, data = run_dynamic(f"synthetic:{variant}", f"--protocol-set=md.steps={steps}", *grid)
    status = {k: v["status"] for k, v in checks.items()}
    assert all(status[k] == "fail" for k in must_fail), status
    assert all(status[k] == "pass" for k in must_pass), status
    assert "error" not in status.values(), status
    md = data["models"][f"synthetic:{variant}"]["quantities"]["md"]
    assert set(md) == {"npt_melchionna", "nvt_langevin"}
    out = Path(result.stdout.str().split("results written to ")[-1].split()[0]).parent
    assert (out / "figures" / f"npt_melchionna_synthetic_{variant}.png").is_file()
    files = md["npt_melchionna"]["value"]["rows"][0]["files"]  # none for a run that blew up at step 0
    assert all((out / f).is_file() for f in files.values()) and ("trajectory" in files) == (variant != "nan")


def test_smoke_length_is_inconclusive_not_fail(run_dynamic, pytester):
    """0.3 ps cannot decide md_polar's checks (the run has not equilibrated): inconclusive, its own
    outcome in results.json, JUnit, the terminal summary and the exit status (--inconclusive)."""
    junit = "junit.xml"
    result, checks, data = run_dynamic("synthetic:md_polar", "-m", "npt", f"--junitxml={junit}")
    status = {k: v["status"] for k, v in checks.items()}
    assert "fail" not in status.values() and "inconclusive" in status.values(), status
    assert "pass" not in {status["test_cubic_above_tc"], status["test_tc_vs_experiment"]}
    assert data["harness"]["inconclusive_policy"] == "warn"  # the smoke protocol's default
    chk = next(v for k, v in checks.items() if v["status"] == "inconclusive")
    assert chk["verdict"]["status"] == "inconclusive" and chk["needs"]
    assert re.search(r"more ps at \d+ K", chk["needs"]), chk["needs"]  # the step that decides it, with its length
    out = result.stdout.str()
    assert "inconclusive checks (neither passed nor failed)" in out and " inconclusive" in out.splitlines()[-1]
    assert result.ret == 0  # warn: listed, not failing the run
    xml = (pytester.path / junit).read_text()
    assert 'name="pto_status" value="inconclusive"' in xml
    # the same (cached) run under --inconclusive=fail fails the run
    result, checks2, _ = run_dynamic("synthetic:md_polar", "-m", "npt", "--inconclusive=fail")
    assert {k: v["status"] for k, v in checks2.items()} == status
    assert result.ret == 1 and "--inconclusive=fail" in result.stdout.str()


def test_rerun_hits_the_md_cache(run_dynamic):
    run_dynamic("synthetic:md_polar", "-m", "npt")
    _, _, data = run_dynamic("synthetic:md_polar", "-m", "npt")
    rows = data["models"]["synthetic:md_polar"]["quantities"]["md"]["npt_melchionna"]["value"]["rows"]
    assert all(r["cache_hit"] for r in rows)


def test_both_integrators_recorded(run_dynamic):
    _, checks, data = run_dynamic("synthetic:md_polar", "-m", "npt", "--npt-integrator=melchionna",
                                  "--npt-integrator=mtk")
    assert set(data["models"]["synthetic:md_polar"]["quantities"]["md"]) == {"npt_melchionna", "npt_mtk"}
    assert "test_cubic_above_tc[mtk]" in checks and "test_cubic_above_tc" in checks


SHARE_SCRIPT = """
import sys, time, json
from pto_checks.cache import Cache
from pto_checks.models import load_model
from pto_checks.protocols import get_protocol, apply_overrides
from pto_checks import stages

model = load_model("synthetic:md_polar", "cpu")
orig = model.calculator.calculate
def slow(*a, **k):
    time.sleep(0.004)
    return orig(*a, **k)
model.calculator.calculate = slow
proto = apply_overrides(get_protocol("smoke"), ["md.temperatures_K=300,500,700,900", "md.steps=100"])
rows = stages.md_sweep(model, proto, Cache(sys.argv[1]), "nvt", "langevin", progress=False)
print(json.dumps([[r["T_K"], r["cache_hit"], r["Pz"]] for r in rows]))
"""


def test_two_workers_share_a_sweep(tmp_path):
    """Two processes asking for the same sweep run each temperature once, in parallel."""
    script = tmp_path / "share.py"
    script.write_text(SHARE_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "c")], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert [r[2] for r in outs[0]] == [r[2] for r in outs[1]]
    computed = [not a[1] for a in outs[0]], [not b[1] for b in outs[1]]
    # every temperature computed by exactly one of the two processes
    assert all(x != y for x, y in zip(*computed, strict=True)), outs


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(1, 4), shear=st.booleans())
def test_min_distance_matches_brute_force(seed, n, shear):
    from ase.geometry import get_distances

    at = structures.supercell(structures.tetragonal(a=3.9, c=4.15), n)
    rng = np.random.default_rng(seed)
    at.positions += rng.normal(0, 0.4, size=at.positions.shape)
    if shear:
        cell = at.cell.array.copy()
        cell[2, 0] = 0.7
        at.set_cell(cell, scale_atoms=True)
    _, d = get_distances(at.positions, cell=at.cell, pbc=True)
    d[np.diag_indices_from(d)] = np.inf
    expected = min(float(d.min()), 1.5)
    assert analysis.min_distance(at.positions, at.cell.array) == pytest.approx(expected)


def test_batched_engine_with_mtk_runs_mtk_on_the_ase_engine(run_dynamic):
    """The batched engine has no MTK integrator: under --engine batched the MTK sweep runs on the
    ASE engine (chosen per task by pto_checks.md.engines.choose_engine), without an error."""
    result, checks, data = run_dynamic("synthetic:md_polar", "--engine=batched", "--npt-integrator=mtk", "-m", "npt",
                                       "--protocol-set=md.steps=20")
    assert "error" not in {v["status"] for v in checks.values()}, checks
    assert data["models"]["synthetic:md_polar"]["quantities"]["md"]["npt_mtk"]["value"]["engine"] == "ase"
    assert "Traceback" not in result.stdout.str()
