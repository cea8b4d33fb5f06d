"""Reports (HTML in headless Chromium, Markdown, comparison) and the CI gate (baselines)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from pto_checks import report
from pto_checks.results import validate
from tests.harness.browser import dump_dom, figures_rendered, screenshot
from tests.harness.small_models import synthetic_model_file as _model_file

ROOT = Path(__file__).resolve().parents[2]
SCREENS = ROOT / "out-report-screens"  # CI artefacts (.gitignore: out-*/)
CHECK_FILES = ("test_static.py", "test_phonons.py", "test_dynamic.py", "test_regression.py", "test_sanity.py")


@pytest.fixture
def checks(pytester, check_files):
    check_files(*CHECK_FILES)

    def run(*args: str):
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--pto-cache={pytester.path / 'cache'}",
                                             *args)

    return run


def test_html_report_renders_in_headless_chromium(checks, pytester):
    out = pytester.path / "out"
    checks("-m", "static or phonon or dynamic", "--model=synthetic:good,synthetic:md_polar",
           "--protocol=smoke", f"--report={out}")
    assert (out / "report.md").is_file()
    validate(json.loads((out / "results.json").read_text()))
    dom = dump_dom(out / "report.html")
    assert dom.count("<th class=\"model\"") == 2
    n, rendered = figures_rendered(dom)
    # ground state + overlays (NPT, NVT) + 2 models x (NPT, NVT, phonon bands)
    assert n == rendered == 9
    screenshot(out / "report.html", SCREENS / "two_synthetic_models.png")


def test_report_rebuilt_from_saved_results_with_comparison(checks, pytester, tmp_path):
    old, new = pytester.path / "old", pytester.path / "new"
    checks("-m", "static", "--model=synthetic:good", f"--report={old}")
    checks("-m", "static", "--model-file", str(_model_file(pytester.path, "compressed")), "--model=my-model",
           f"--report={new}")
    data_old = json.loads((old / "results.json").read_text())
    data_new = json.loads((new / "results.json").read_text())
    data_new["models"]["synthetic:good"] = data_new["models"].pop("my-model")
    changes = report.compare(data_new, data_old)
    worse = [c for c in changes if c["kind"] == "verdict" and c["worse"]]
    moved = {c["what"] for c in changes if c["kind"] == "quantity"}
    assert [c["what"] for c in worse] == ["test_static.py::test_lattice_a_vs_experiment"]
    assert {"ground_state.a", "ground_state.c"} <= moved
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps(data_new))
    from pto_checks.cli import main

    assert main(["report", str(saved), "-o", str(tmp_path / "rep"), "--compare", str(old / "results.json")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "lattice a vs experiment" in md and "pass -> fail (WORSE)" in md




def test_gate_unchanged_passes_regression_fails_improvement_is_reported(checks, pytester):
    base = pytester.path / "baseline.json"
    args = ["-m", "static", "--model=my-model"]
    r = checks(*args, "--model-file", str(_model_file(pytester.path, "compressed")), f"--report={pytester.path / 'b'}",
               f"--baseline={base}", "--update-baseline")
    assert base.is_file() and r.ret == 1  # the baseline run itself has a failing verdict

    same = checks(*args, "--model-file", str(_model_file(pytester.path, "compressed")), f"--baseline={base}")
    assert same.ret == 0
    same.assert_outcomes(passed=7, xfailed=1)  # 7 static checks (keeps_p4mm added), one failing in the baseline

    worse = checks(*args, "--model-file", str(_model_file(pytester.path, "shallow")), f"--baseline={base}")
    assert worse.ret == 1
    worse.stdout.fnmatch_lines(["*FAILED*test_delta_e_vs_pbesol*"])

    better = checks(*args, "--model-file", str(_model_file(pytester.path, "good")), f"--baseline={base}",
                    f"--report={pytester.path / 'g'}")
    assert better.ret == 1
    better.stdout.fnmatch_lines(["*test_lattice_a_vs_experiment*", "*XPASS(strict)*--update-baseline*"])
    better.stdout.fnmatch_lines(["*REGRESSION: moved beyond tolerance: ground_state.a*"])
    data = json.loads((pytester.path / "g" / "results.json").read_text())
    chk = data["models"]["my-model"]["checks"]["test_static.py::test_lattice_a_vs_experiment"]
    assert chk["status"] == "pass" and chk["gate"].startswith("UNEXPECTED PASS")


def test_gate_fails_when_a_model_starts_melting(checks, pytester):
    base = pytester.path / "baseline.json"
    # 3 ps per temperature: long enough to decide (0.3 ps leaves the melting check inconclusive)
    args = ["-m", "npt", "--protocol=smoke", "--protocol-set=md.steps=1500", "--model=my-model"]
    checks(*args, "--model-file", str(_model_file(pytester.path, "md_polar")), f"--report={pytester.path / 'b'}",
           f"--baseline={base}", "--update-baseline")
    same = checks(*args, "--model-file", str(_model_file(pytester.path, "md_polar")), f"--baseline={base}")
    assert same.ret == 0
    melts = checks(*args, "--model-file", str(_model_file(pytester.path, "liquid")), f"--baseline={base}")
    assert melts.ret == 1
    melts.stdout.fnmatch_lines(["*FAILED*test_npt_no_melting_or_instability*"])
    out = melts.stdout.str()
    assert "MOLTEN at" in out or "UNSTABLE at" in out  # 3 ps of the weak LJ fluid: its cell explodes


def test_gate_cannot_pass_by_skipping(checks):
    r = checks("-m", "sanity", "-k", "reference_energies", "--model=synthetic:good")
    r.assert_outcomes(skipped=1)
    assert r.ret == 1
    r.stdout.fnmatch_lines(["*every check was skipped*"])


def test_update_baseline_needs_report_and_baseline(checks):
    r = checks("-m", "static", "--model=synthetic:good", "--update-baseline")
    assert r.ret == pytest.ExitCode.USAGE_ERROR


def test_junitxml_works(checks, pytester):
    r = checks("-m", "static", "--model=synthetic:compressed", f"--junitxml={pytester.path / 'j.xml'}")
    assert r.ret == 1
    xml = (pytester.path / "j.xml").read_text()
    assert "test_lattice_a_vs_experiment" in xml and 'name="pto_status" value="fail"' in xml
    import xml.etree.ElementTree as ET

    case = next(c for c in ET.fromstring(xml).iter("testcase") if c.get("name").startswith("test_lattice_a_vs"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["pto_status"] == "fail" and props["protocol"] == "paper" and props["unit"] == "Angstrom"
    assert float(props["reference"]) == 3.90 and float(props["tolerance"]) == 0.05 and float(props["measured"]) < 3.85
    assert props["pto_model"] == "synthetic:compressed" and props["pto_check"].endswith("test_lattice_a_vs_experiment")
    for case in ET.fromstring(xml).iter("testcase"):  # every check carries them
        names = {p.get("name") for p in case.iter("property")}
        assert {"pto_status", "measured", "reference", "tolerance", "unit", "protocol"} <= names


def test_nightly_compares_with_the_previous_run(tmp_path, monkeypatch):
    import time

    from pto_checks.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["nightly", str(tmp_path / "nightly"), "--protocol", "smoke", "--model", "synthetic:good", "-m", "static"]
    assert main(args) == 0
    time.sleep(1.1)
    assert main(args) == 0
    runs = sorted((tmp_path / "nightly").glob("*/report.md"))
    assert len(runs) == 2
    assert "## Changes since the previous results" in runs[-1].read_text()


def test_real_model_report_renders():
    """The report of real models' results (CI: CHGNet and SevenNet under the smoke protocol)."""
    paths = [p for p in os.environ.get("PTO_REAL_RESULTS", "").split(",") if p]
    if not paths:
        pytest.skip("set PTO_REAL_RESULTS=results.json[,...] (.ci/run does, after the smoke runs)")
    from pto_checks.results import load, merge

    data = merge([load(p) for p in paths])
    out = Path(tempfile.mkdtemp())
    html = report.build_report(data, out)
    for p in paths:
        validate(json.loads(Path(p).read_text()))
    dom = dump_dom(html)
    assert dom.count("<th class=\"model\"") == len(data["models"]) >= 1
    n, rendered = figures_rendered(dom)
    # per model: phonon bands, NPT and NVT sweeps; the ground-state figure; overlays when several models
    overlays = 2 if len(data["models"]) > 1 else 0
    assert n == rendered == 1 + overlays + 3 * len(data["models"])
    screenshot(html, SCREENS / "real_models.png", height=2400)
