"""Reports that accumulate: results of several runs into one ``--report DIR`` (per model and check,
each with its protocol), figures rebuilt without stale ones, the JSON Schema of results.json, the
verdict matrix for many models (headless Chromium, screenshots in ``out-report-screens/``), the
terminal matrix, and the exit codes of ``pto-checks nightly``."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pto_checks import report
from pto_checks.cli import checks_dir
from pto_checks.results import Results, load, merge, validate
from tests.harness.small_models import synthetic_model_file as _model_file

ROOT = Path(__file__).resolve().parents[2]
SCREENS = ROOT / "out-report-screens"  # CI artefacts (.gitignore: out-*/)
CHECK_FILES = ("test_static.py", "test_phonons.py", "test_dynamic.py", "test_regression.py", "test_sanity.py")


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The check files (copied into ``folder``) run by pytest in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "pytest", *CHECK_FILES, "-p", "no:cacheprovider", f"--pto-cache={folder / 'cache'}",
           "-q", *args]
    return subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A static + phonon run (protocol paper) and then a dynamic run (protocol smoke) of one model
    into the same report folder; plus the dynamic run alone into another folder (MD from the cache)."""
    folder = tmp_path_factory.mktemp("accumulate")
    for f in CHECK_FILES:
        shutil.copy(checks_dir() / f, folder / f)
    out, dyn = folder / "out", folder / "dynamic_only"
    model = "--model=synthetic:md_polar"
    r1 = _pytest(folder, "-m", "static or phonon", model, f"--report={out}")
    assert (out / "results.json").is_file(), r1.stdout[-3000:] + r1.stderr[-3000:]
    shutil.copy(out / "results.json", folder / "static_paper.json")
    (out / "figures" / "left_over_from_an_old_run.png").write_bytes(b"stale")  # a figure pto-checks wrote
    with (out / ".pto-checks-figures").open("a") as fh:
        fh.write("left_over_from_an_old_run.png\n")
    r2 = _pytest(folder, "-m", "dynamic", model, "--protocol=smoke", f"--report={out}")
    r3 = _pytest(folder, "-m", "dynamic", model, "--protocol=smoke", f"--report={dyn}")
    return {"folder": folder, "out": out, "dynamic_only": dyn, "runs": (r1, r2, r3)}


def test_dynamic_run_after_static_run_keeps_both(runs):
    data = load(runs["out"] / "results.json")
    checks = data["models"]["synthetic:md_polar"]["checks"]
    static = {t: c for t, c in checks.items() if "static" in c["markers"] or "phonon" in c["markers"]}
    dynamic = {t: c for t, c in checks.items() if "dynamic" in c["markers"]}
    assert len(static) == 8 and len(dynamic) == 8
    assert {c["protocol"] for c in static.values()} == {"paper"}
    assert {c["protocol"] for c in dynamic.values()} == {"smoke"}
    assert set(data["protocols"]) == {"paper", "smoke"} and data["protocols"]["smoke"]["reduced"] is True
    assert [r["protocol"] for r in data["runs"]] == ["paper", "smoke"]
    # md_polar fails static verdicts (exit 1); its 0.3 ps dynamic checks are inconclusive, which the
    # smoke protocol only warns about (exit 0)
    assert [r["exit_status"] for r in data["runs"]] == [1, 0]
    q = data["models"]["synthetic:md_polar"]["quantities"]
    assert q["ground_state"]["a"]["protocol"] == "paper" and q["md"]["npt_melchionna"]["protocol"] == "smoke"
    md = (runs["out"] / "report.md").read_text()
    assert "| **static** (protocol) | paper |" in md and "| **npt** (protocol) | smoke |" in md


def test_results_json_matches_its_schema(runs):
    for path in (runs["out"] / "results.json", runs["folder"] / "static_paper.json",
                 runs["dynamic_only"] / "results.json"):
        validate(json.loads(path.read_text()))
    bad = json.loads((runs["out"] / "results.json").read_text())
    del bad["models"]["synthetic:md_polar"]["checks"]["test_dynamic.py::test_tc_vs_experiment"]["status"]
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        validate(bad)
    assert (Path(report.__file__).parent / "schema" / "results.schema.json").is_file()


def test_trajectories_are_exported_and_linked(runs):
    import ase.io

    out = runs["out"]
    sweep = load(out / "results.json")["models"]["synthetic:md_polar"]["quantities"]["md"]["npt_melchionna"]
    rows = sweep["value"]["rows"]
    assert [r["T_K"] for r in rows] == [300.0, 1000.0]
    for r in rows:
        frames = ase.io.read(out / r["files"]["trajectory"], ":")
        assert len(frames) >= 2 and len(frames[0]) == 40
        lines = (out / r["files"]["samples"]).read_text().splitlines()
        header = lines[0].split(",")
        assert {"step", "time_ps", "T_K", "epot_eV", "a", "c", "Pz"} <= set(header)
        by_step = {int(float(v[header.index("step")])): v for v in (line.split(",") for line in lines[1:])}
        for f in frames:  # each frame says when and what it was, as the samples recorded it
            sample = by_step[f.info["step"]]
            assert f.info["time_ps"] == pytest.approx(float(sample[header.index("time_ps")]))
            assert f.info["T_K"] == pytest.approx(float(sample[header.index("T_K")]))
            assert f.get_potential_energy() == pytest.approx(float(sample[header.index("epot_eV")]))
            assert f.get_stress().shape == (6,)  # eV/A^3 (NPT: the model's stress drives the cell)


def test_stale_figures_never_survive(runs, tmp_path):
    out = runs["out"]
    figs = {p.name for p in (out / "figures").iterdir()}
    assert "left_over_from_an_old_run.png" not in figs
    assert {"npt_melchionna_synthetic_md_polar.svg", "npt_melchionna_synthetic_md_polar.png",
            "nvt_langevin_synthetic_md_polar.png", "phonons_synthetic_md_polar.png", "ground_state.svg"} <= figs
    # rebuilt from the static results only: the MD figures of the richer report are gone
    from pto_checks.cli import main

    assert main(["report", str(runs["folder"] / "static_paper.json"), "-o", str(out)]) == 0
    figs = {p.name for p in (out / "figures").iterdir()}
    assert not any(f.startswith(("npt_", "nvt_")) for f in figs) and "ground_state.png" in figs
    assert not [p for p in out.iterdir() if p.name.startswith(".figures")]
    from PIL import Image

    with Image.open(out / "figures" / "ground_state.png") as im:
        assert round(im.info["dpi"][0]) == 300


def test_merged_report_labels_each_section_with_its_own_protocol(runs, tmp_path):
    from pto_checks.cli import main

    a, b = runs["folder"] / "static_paper.json", runs["dynamic_only"] / "results.json"
    assert main(["report", str(a), str(b), "-o", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| **static** (protocol) | paper |" in md and "| **nvt** (protocol) | smoke |" in md
    assert "static, phonon: protocol paper; npt, nvt: protocol smoke" in md
    assert "- **smoke**: reduced: qualitative only; 2×2×2 cells = 40 atoms" in md
    # the NPT figure's caption names the smoke protocol, not the paper one
    npt_caption = next(line for line in md.splitlines() if "NPT (melchionna) heating sweep" in line)
    assert "Protocol smoke (reduced" in npt_caption and "paper" not in npt_caption


def _ten_models(runs) -> dict:
    data = load(runs["out"] / "results.json")
    entry = data["models"].pop("synthetic:md_polar")
    names = ["chgnet", "chgnet-0.2.0", "sevennet", "sevennet-mf-0", "mace:/models/mace-pbesol-finetune.model",
             "orb", "m3gnet", "gptff", "deepmd:/models/unipero.pth", "synthetic:md_polar"]
    for i, n in enumerate(names):
        e = copy.deepcopy(entry)
        if i == 3:  # the statuses a newer harness may write: inconclusive has its own style, others neutral
            e["checks"]["test_dynamic.py::test_tc_vs_experiment"]["status"] = "inconclusive"
            e["checks"]["test_dynamic.py::test_cubic_above_tc"]["status"] = "undecided-by-a-future-version"
        data["models"][n] = e
    return data


def test_verdict_matrix_of_ten_models_fits_1400px_in_chromium(runs, tmp_path):
    from tests.harness.test_report_gate import dump_dom, figures_rendered, screenshot

    data = _ten_models(runs)
    html = report.build_report(data, tmp_path / "ten")
    dom = dump_dom(html, width=1400)
    body = dom[dom.index("<body"):dom.index(">", dom.index("<body"))]
    right = int(body.split('data-matrix-right="')[1].split('"')[0])
    page = int(body.split('data-page-width="')[1].split('"')[0])
    assert right <= 1400 and page <= 1400, (right, page)
    n, rendered = figures_rendered(dom)
    # ground state + overlays (NPT, NVT) + per model (NPT, NVT, phonons)
    assert n == rendered == 1 + 2 + 3 * 10
    assert 'class="st-inconclusive"' in dom.replace("'", '"') and "undecided-by-a-future-version" in dom
    assert 'class="st-other"' in dom.replace("'", '"')
    png = screenshot(html, SCREENS / "ten_models_1400px.png", width=1400, height=1800)
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] == 1400
    md = (tmp_path / "ten" / "report.md").read_text()
    tables = [line for line in md.splitlines() if line.startswith("| check |")]
    assert len(tables) == 2  # 8 models per Markdown table, then the rest


def test_terminal_matrix_and_unknown_statuses():
    lines = report.terminal_matrix({"chgnet": {"test_static.py::test_a": "pass", "test_x.py::test_b": "inconclusive"},
                                    "sevennet": {"test_static.py::test_a": "fail", "test_x.py::test_b": "novel"}})
    assert lines[0].split() == ["chgnet", "sevennet"]
    assert lines[1].split() == ["a", "pass", "FAIL"] and lines[2].split() == ["b", "?", "novel"]
    many = {f"model-with-a-long-name-{i}": {"test_s.py::test_a": "pass"} for i in range(10)}
    lines = report.terminal_matrix(many, width=100)
    assert lines[0].split()[:2] == ["M1", "M2"] and max(map(len, lines)) <= 100
    assert "M10 = model-with-a-long-name-9" in lines[-1]


def test_merge_keeps_protocols_apart():
    r1 = Results({"name": "smoke+custom", "overrides": ["md.steps=10"]})
    r1.check("m", "test_dynamic.py::test_x", "pass")
    r2 = Results({"name": "smoke+custom", "overrides": ["md.steps=20"]})
    r2.check("m", "test_dynamic.py::test_y", "fail")
    r2.check("m", "test_static.py::test_z", "skip")
    r3 = Results({"name": "paper"})
    r3.check("m", "test_static.py::test_z", "pass")  # a newer verdict replaces the older one whole
    data = merge([r1.data, r2.data, r3.data])
    checks = data["models"]["m"]["checks"]
    assert checks["test_dynamic.py::test_x"]["protocol"] == "smoke+custom"
    assert checks["test_dynamic.py::test_y"]["protocol"] == "smoke+custom#2"
    z = checks["test_static.py::test_z"]
    assert (z["status"], z["protocol"]) == ("pass", "paper")
    assert data["protocols"]["smoke+custom#2"]["overrides"] == ["md.steps=20"]
    validate(data)
    # other weights under the same name: the older results are not about this model
    for r, fp in ((r1, "aaa"), (r3, "bbb")):
        r.set_spec("m", {"name": "m", "fingerprint": fp})
    data = merge([r1.data, r3.data])
    assert list(data["models"]["m"]["checks"]) == ["test_static.py::test_z"]


def test_load_failure_is_printed_once_and_the_terminal_shows_the_matrix(runs):
    r = _pytest(runs["folder"], "-m", "static", "--model=ase:no_such_module_xyz:make,synthetic:good")
    out = r.stdout
    # pytest's own one-line summary may repeat the message when the terminal is wide (CI's is): count
    # what the harness prints, i.e. everything above that section
    ours = out.split("short test summary info")[0]
    assert ours.count("No module named 'no_such_module_xyz'") == 2  # the first test and the summary section
    assert ours.count("could not load (the reason is printed once, at its first test)") == 6
    assert "pto-checks: verdicts (checks x models)" in out
    row = next(line for line in out.splitlines() if line.startswith("lattice a vs experiment"))
    assert row.split()[-2:] == ["ERROR", "pass"]


# --- pto-checks nightly ------------------------------------------------------------------------



def test_nightly_exit_codes_and_shared_cache(tmp_path, monkeypatch):
    from pto_checks.cli import NIGHTLY_ERRORS, NIGHTLY_FAILED_VERDICTS, NIGHTLY_OK, NIGHTLY_REGRESSIONS, main

    monkeypatch.chdir(tmp_path)
    night = ["nightly", str(tmp_path / "n"), "--model", "my-model", "-m", "static"]
    good, compressed = str(_model_file(tmp_path, "good")), str(_model_file(tmp_path, "compressed"))
    # a completed run with a failed verdict (compressed lattice) is a result: exit 0, report written
    assert main([*night, "--model-file", compressed]) == NIGHTLY_OK
    assert len(list((tmp_path / "n").glob("*/report.html"))) == 1
    # pytest's cache folder of this directory, shared with plain pytest runs
    assert list((tmp_path / ".pytest_cache" / "d" / "pto-checks" / "ground_state").glob("*/meta.json"))
    assert main([*night, "--model-file", compressed, "--fail-on-verdict"]) == NIGHTLY_FAILED_VERDICTS
    # the baseline: a good model's accepted results; the compressed one regresses from it
    assert main([*night, "--model-file", good]) == NIGHTLY_OK
    base = sorted((tmp_path / "n").glob("*/results.json"))[-1]
    assert main([*night, "--model-file", good, "--baseline", str(base)]) == NIGHTLY_OK
    assert main([*night, "--model-file", compressed, "--baseline", str(base)]) == NIGHTLY_REGRESSIONS
    # a model that cannot load is an error
    assert main(["nightly", str(tmp_path / "n"), "--model", "ase:no_such_module_xyz:make", "-m", "static"]) \
        == NIGHTLY_ERRORS


def test_nightly_outcome_rules():
    from pto_checks.cli import nightly_outcome

    def data(status, markers=("static",), gate=None):
        c = {"status": status, "markers": list(markers), "message": "m"}
        if gate:
            c["gate"] = gate
        return {"models": {"m": {"checks": {"t": c}}}}

    base = data("pass")
    assert nightly_outcome(None, 1, None, False)[0] == 3
    assert nightly_outcome(data("pass"), 2, None, False)[0] == 3  # pytest interrupted / usage error
    assert nightly_outcome(data("error"), 1, None, False)[0] == 3
    assert nightly_outcome(data("fail"), 1, base, False)[0] == 2
    assert nightly_outcome(data("fail", ("regression",)), 1, data("fail", ("regression",)), False)[0] == 2
    assert nightly_outcome(data("fail"), 1, None, False)[0] == 0
    assert nightly_outcome(data("fail"), 1, None, True)[0] == 1
    assert nightly_outcome(data("fail", gate="expected failure (baseline)"), 0, data("fail"), True)[0] == 0
    assert nightly_outcome(data("inconclusive"), 0, base, True)[0] == 0


def test_report_holds_the_accuracy_tier_environments_and_models_not_run(tmp_path):
    """The accuracy tier's figures (drawn by the tier) are in the model's section with their
    protocol, subsample and verdict; an inconclusive verdict has its own style; each model names
    its environment; models not run are listed with the install command; the file stays valid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    for key in ("parity", "errors_vs_T"):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, 1])
        files[key] = str(tmp_path / f"{key}.png")
        fig.savefig(files[key])
        plt.close(fig)
    r = Results({"name": "quick"})
    r.set_spec("chgnet", {"name": "chgnet", "family": "chgnet", "functional": "PBE", "fingerprint": "f" * 64})
    r.quantity("chgnet", "accuracy", "files", files, "")
    r.quantity("chgnet", "accuracy", "subsample",
               {"every": 10, "offset": 0, "text": "every 10-th frame (300 K: 5/50)"}, "")
    r.check("chgnet", "test_accuracy.py::test_forces_vs_pbesol_aimd", "inconclusive",
            message="limit inside the 95 % interval", markers=["accuracy"])
    data = r.data
    data["models"]["chgnet"]["environment"] = {"key": "main", "python": "/venv/bin/python", "packages": {}}
    data["unavailable"] = [{"model": "gptff", "reason": "environment .venv-gptff not found: "
                                                        "bash scripts/install.sh gptff"}]
    validate(data)
    html = report.build_report(data, tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    figs = sorted(p.name for p in (tmp_path / "rep" / "figures").iterdir())
    assert figs == ["accuracy_chgnet_errors_vs_T.png", "accuracy_chgnet_parity.png"]
    caption = next(line for line in md.splitlines() if "force components, model vs DFT" in line)
    assert "trained on PBE" in caption and "protocol quick" in caption and "every 10-th frame" in caption
    assert "forces vs pbesol aimd: inconclusive" in caption
    assert "| **accuracy** (protocol) | quick |" in md and "? inconclusive [1]" in md
    assert "environment main (/venv/bin/python)" in md
    assert "- **gptff**: not run: environment .venv-gptff not found: bash scripts/install.sh gptff" in md
    page = html.read_text()
    assert "class='st-inconclusive'" in page and "bash scripts/install.sh gptff" in page
