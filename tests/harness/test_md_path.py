"""The single MD path: regression tests for issue 9's three bugs (each failed on the old two-path
stage), driven through the real check files with the batched engine on the CPU and a synthetic
model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: counts the synthetic model's force calls of the session into calls.txt (one line per call)
COUNTING_CONFTEST = """
import os
from pto_checks.models import synthetic

_orig = synthetic.ElasticNetworkCalculator.calculate

def _counting(self, *a, **k):
    with open(os.path.join(os.path.dirname(__file__), "calls.txt"), "a") as fh:
        fh.write("1\\n")
    return _orig(self, *a, **k)

synthetic.ElasticNetworkCalculator.calculate = _counting
"""


@pytest.fixture
def checks_dir(check_files):
    return check_files("test_dynamic.py", "test_engines.py")


def _run(pytester, *args: str):
    report = pytester.path / "out"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--protocol=smoke",
                                           f"--pto-cache={pytester.path / 'cache'}", f"--report={report}",
                                           "--protocol-set=md.steps=20", *args)
    data = json.loads((report / "results.json").read_text())
    return result, data


def test_batched_engine_with_both_npt_integrators_runs_each_where_it_is_supported(checks_dir):
    """Bug 1: --engine batched with --npt-integrator melchionna --npt-integrator mtk ran the mtk
    sweep's tasks in the batch (the batched engine does not integrate MTK) and the melchionna
    sweep raised.  Now mtk runs on the ASE engine, melchionna batched, and every verdict is produced."""
    model = "synthetic:md_polar"
    result, data = _run(checks_dir, f"--model={model}", "--engine=batched", "--npt-integrator=melchionna",
                        "--npt-integrator=mtk", "-m", "npt")
    checks = data["models"][model]["checks"]
    status = {k.split("::")[-1]: v["status"] for k, v in checks.items()}
    assert "error" not in status.values(), (status, result.stdout.str()[-3000:])
    assert "test_cubic_above_tc[mtk]" in status and "test_cubic_above_tc" in status
    md = data["models"][model]["quantities"]["md"]
    assert md["npt_melchionna"]["value"]["engine"] == "batched"
    assert md["npt_mtk"]["value"]["engine"] == "ase"


def test_rerun_md_computes_each_task_once(checks_dir):
    """Bug 2: --rerun-md with the batched engine computed every temperature two or three times
    (the batch, then each temperature alone with the cache disabled, then the next fixture's batch).
    Now a --rerun-md session makes exactly as many model calls as a session on an empty cache."""
    checks_dir.makeconftest(COUNTING_CONFTEST)
    calls = checks_dir.path / "calls.txt"
    args = ("--model=synthetic:md_polar", "--engine=batched", "-m", "dynamic")
    _run(checks_dir, *args)
    fresh = len(calls.read_text().splitlines())
    calls.unlink()
    _run(checks_dir, *args)
    assert not calls.exists() or not calls.read_text().strip(), "a cached rerun called the model"
    result, data = _run(checks_dir, *args, "--rerun-md")
    rerun = len(calls.read_text().splitlines())
    assert rerun == fresh, (fresh, rerun)
    rows = data["models"]["synthetic:md_polar"]["quantities"]["md"]["npt_melchionna"]["value"]["rows"]
    assert not any(r["cache_hit"] for r in rows)


@pytest.mark.parametrize("expr", ["npt", "nvt", "dynamic", "npt or nvt"])
def test_ensemble_markers_do_not_select_engine_equivalence(checks_dir, expr):
    """Bug 3: -m npt / -m nvt also selected the engine-equivalence tests (marked npt/nvt besides
    equivalence), which run both engines and both ensembles.  Equivalence runs only when asked."""
    result = checks_dir.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "-q",
                                             "--model=synthetic:md_polar", "-m", expr)
    out = result.stdout.str()
    assert "test_dynamic.py::" in out
    assert "test_engines.py::" not in out, out


def test_equivalence_runs_when_asked(checks_dir):
    result = checks_dir.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "-q",
                                             "--model=synthetic:md_polar", "-m", "equivalence")
    out = result.stdout.str()
    assert "test_engines.py::test_batched_engine_matches_ase_npt" in out
    assert "test_dynamic.py::" not in out


def test_engines_agree_bounds_abs_p_with_its_own_error_bar():
    """|P| differing by 0.3 C/m^2 with a small |P| error fails, even where Pz's error bar (another
    quantity, here large) would have hidden it."""
    from pto_checks import verdicts

    row = {"T_K": 300.0, "c_over_a": 1.05, "c_over_a_err": 0.001, "phase": "tetragonal", "P_abs": 0.6,
           "P_abs_err": 0.01, "Pz": 0.0, "Pz_err": 0.5}
    other = dict(row, P_abs=0.9)
    assert verdicts.engines_agree([row], [dict(row)], "nvt").passed
    bad = verdicts.engines_agree([row], [other], "nvt")
    assert not bad.passed and "|P| differs" in bad.message


def test_a_waiting_process_says_who_holds_the_entry(tmp_path):
    """A process waiting for a cache entry names the holder (host, PID, since when, for how long)."""
    import os
    import subprocess
    import sys

    from pto_checks.cache import Cache

    script = ("import sys, time; from pto_checks.cache import Cache\n"
              "c = Cache(sys.argv[1])\n"
              "with c.lock('md', 'k'):\n    print('held', flush=True); time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        cache = Cache(tmp_path)
        with cache.lock("md", "k", blocking=False) as got:
            assert got is False
        lines: list[str] = []
        cache.report_every_s, cache.notify = 0.2, lines.append

        def give_up(line: str) -> None:
            lines.append(line)
            if len(lines) >= 2:
                raise TimeoutError

        cache.notify = give_up
        with pytest.raises(TimeoutError), cache.lock("md", "k"):
            pass
        assert f"PID {holder.pid}" in lines[0] and "since" in lines[0] and "waiting" in lines[0], lines
    finally:
        holder.kill()
        holder.wait()
    with Cache(tmp_path).lock("md", "k", blocking=False) as got:  # released when the holder died
        assert got is True
    assert not (tmp_path / "md" / "k.lock.holder").exists()


# --- the sweep's cost estimate and ETA (issue 14) -----------------------------------------------

def test_sweep_clock_counts_the_whole_sweep(monkeypatch):
    """ETA of the whole sweep = steps left (cache hits and resumed steps taken off) / measured rate."""
    from pto_checks.md import observe

    now = [100.0]
    monkeypatch.setattr(observe.time, "perf_counter", lambda: now[0])
    clock = observe.SweepClock("m NPT", "paper", "cpu", units=4 * 1000, runs=4, steps=1000, n_atoms=625,
                               reduced=False)
    clock.skip(1000)  # one temperature in the cache
    lines: list[str] = []
    prog = observe.Progress("m", 1000, write=lines.append, clock=clock)
    row = {"a": 3.9, "b": 3.9, "c": 4.1, "T_K": 300.0}
    prog(200, row)  # resumed at 200 - 10: these steps are done
    now[0] += 10.0
    prog(300, row)  # 100 steps in 10 s
    assert clock.rate == pytest.approx(10.0)
    assert clock.eta_s() == pytest.approx((3000 - 200 - 100) / 10.0)
    cost, progress = lines  # printed once, with the first progress line
    assert "about 4.7 min in all (4.5 min left)" in cost and "sized for a GPU" in cost and "--protocol smoke" in cost
    assert "sweep ETA 4.5 min" in progress
    assert clock.estimate() is None


@pytest.mark.parametrize("engine", ["ase", "batched"])
def test_long_sweep_prints_its_cost_before_it_runs_long(tmp_path, monkeypatch, engine):
    """A full-size protocol on a CPU says what it will cost (from the speed of its first steps) and
    that it is sized for a GPU; every progress line gives the ETA of the whole sweep; a reduced
    protocol gets the estimate without the note; a cached rerun prints nothing."""
    import dataclasses

    from pto_checks import stages
    from pto_checks.cache import Cache
    from pto_checks.md.observe import SweepClock
    from pto_checks.models import load_model
    from pto_checks.protocols import apply_overrides, get_protocol

    monkeypatch.setattr(SweepClock, "estimate_after_s", 0.0)
    model = load_model("synthetic:md_polar", "cpu")
    smoke = get_protocol("smoke")
    paper_sized = dataclasses.replace(get_protocol("paper"), md=dataclasses.replace(smoke.md, steps=40))
    assert not paper_sized.reduced and paper_sized.name == "paper"
    lines: list[str] = []
    stages.md_sweep(model, paper_sized, Cache(tmp_path / "a"), "npt", "melchionna", engine=engine, write=lines.append)
    assert "2 of 2 run(s) to compute, 40 steps of 40 atoms each (protocol 'paper' on cpu, " in lines[0]
    assert " thread" in lines[0]  # the start line says how many threads the MD runs on
    cost = [x for x in lines if "cost of this sweep" in x]
    assert len(cost) == 1, lines
    assert "protocol 'paper'" in cost[0] and "2 run(s) x 40 steps x 40 atoms" in cost[0]
    assert "on cpu" in cost[0] and "sized for a GPU" in cost[0]
    assert all("sweep ETA" in x for x in lines if ": step " in x) and any(": step " in x for x in lines)
    lines.clear()
    stages.md_sweep(model, apply_overrides(smoke, ["md.steps=40"]), Cache(tmp_path / "b"), "npt", "melchionna",
                    engine=engine, write=lines.append)
    assert any("cost of this sweep" in x for x in lines) and not any("sized for a GPU" in x for x in lines)
    lines.clear()
    stages.md_sweep(model, paper_sized, Cache(tmp_path / "a"), "npt", "melchionna", engine=engine, write=lines.append)
    assert lines == []
