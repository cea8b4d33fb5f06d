"""Inconclusive is its own outcome everywhere: the ``check`` fixture, the terminal (letter I,
"N inconclusive", a section saying what would decide each), JUnit (``pto_status``), results.json,
the report's matrix, the gate (``--inconclusive=fail|warn``, by protocol, inherited by a protocol
changed with --protocol-set, also with --baseline) and ``pto-checks verify``.  A check file that
returns a constructed inconclusive verdict keeps this fast (no MD)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHECK_FILE = '''
import pytest
from pto_checks.decisions import Outcome, decide_threshold
from pto_checks.verdicts import Verdict

@pytest.mark.dynamic
def test_undecided(model, check):
    d = decide_threshold(1.004, 0.004, 1.0, n_eff=20, n_eff_per_ps=2.0, temperature_K=900)
    v = Verdict("undecided_check", False, "INCONCLUSIVE: " + d.describe("c/a"), d.mean,
                outcome=d.outcome(d.side.ABOVE), interval=d.interval)
    v.details["decisions"] = [d.to_dict()]
    check(v)

@pytest.mark.dynamic
def test_decided(model, check):
    check(Verdict("decided_check", True, "fine"))
'''


@pytest.fixture
def run(pytester):
    pytester.makepyfile(test_undecided=CHECK_FILE)

    def _run(*args: str):
        out = pytester.path / "out"
        r = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--pto-cache={pytester.path / 'cache'}",
                                          "--model=synthetic:good", f"--report={out}", *args)
        data = json.loads((out / "results.json").read_text())
        return r, data["models"]["synthetic:good"]["checks"], data

    return _run


def test_inconclusive_is_its_own_outcome_and_fails_a_paper_run(run, pytester):
    r, checks, data = run(f"--junitxml={pytester.path / 'j.xml'}")
    chk = checks["test_undecided.py::test_undecided"]
    assert chk["status"] == "inconclusive" and chk["verdict"]["status"] == "inconclusive"
    assert chk["verdict"]["interval"]["level"] == 0.95
    assert "more ps at 900 K" in chk["needs"]
    assert checks["test_undecided.py::test_decided"]["status"] == "pass"
    assert data["harness"]["inconclusive_policy"] == "fail"
    r.stdout.fnmatch_lines(["*inconclusive checks (neither passed nor failed)*",
                            "INCONCLUSIVE synthetic:good test_undecided.py::test_undecided: *more ps at 900 K*",
                            "--inconclusive=fail*", "*1 passed*1 inconclusive*"])
    assert r.ret == 1  # paper: an undecided check fails the run
    assert 'name="pto_status" value="inconclusive"' in (pytester.path / "j.xml").read_text()
    assert "inconclusive" in (pytester.path / "out" / "report.html").read_text()


@pytest.mark.parametrize(("args", "ret"), [
    (("--inconclusive=warn",), 0),
    (("--protocol=smoke",), 0),  # smoke warns
    (("--protocol=smoke", "--protocol-set=md.steps=300"), 0),  # a derived protocol keeps its policy
    (("--protocol=quick", "--protocol-set=md.steps=300"), 1),
    (("--protocol=smoke", "--inconclusive=fail"), 1),
])
def test_policy_by_protocol_and_option(run, args, ret):
    r, checks, _ = run(*args)
    assert checks["test_undecided.py::test_undecided"]["status"] == "inconclusive"
    assert r.ret == ret


def test_inconclusive_in_the_baseline_is_not_a_pass(run, pytester):
    base = pytester.path / "baseline.json"
    run("--inconclusive=warn", f"--baseline={base}", "--update-baseline")
    assert json.loads(base.read_text())["models"]["synthetic:good"]["checks"][
        "test_undecided.py::test_undecided"]["status"] == "inconclusive"
    r, checks, _ = run(f"--baseline={base}")
    assert checks["test_undecided.py::test_undecided"]["status"] == "inconclusive"
    assert "baseline" in checks["test_undecided.py::test_undecided"].get("gate", "")
    assert r.ret == 1  # still undecided: not accepted because the baseline was undecided too


def test_verify_lists_inconclusive_per_the_recorded_policy(run, pytester):
    run("--inconclusive=warn")
    res = str(pytester.path / "out" / "results.json")
    v = subprocess.run([sys.executable, "-m", "pto_checks.cli", "verify", res], capture_output=True, text=True)
    assert v.returncode == 0 and "inconclusive 1" in v.stdout and "--inconclusive=warn" in v.stdout
    assert "more ps at 900 K" in v.stdout
    v = subprocess.run([sys.executable, "-m", "pto_checks.cli", "verify", "--inconclusive=fail", res],
                       capture_output=True, text=True)
    # like a failed verdict: a result, listed, not an error of the run
    assert v.returncode == 0 and "counted as failed verdicts" in v.stdout
