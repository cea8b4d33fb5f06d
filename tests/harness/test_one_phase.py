"""One phase truth: on a sweep with an undecided temperature, the phase drawn in every report
figure, stored in results.json and used for Tc equals the phase the verdicts decide; and
``pto-checks analyze`` decides a user's samples exactly as the harness does."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from pto_checks import analysis, phase, report, verdicts
from pto_checks.cli import main
from pto_checks.md.sweep import Sweep
from pto_checks.protocols import PROTOCOLS, ProtocolError, apply_overrides
from tests.harness.test_decisions import _row
from tests.harness.test_phase_rule import _frames


def _sweep(ensemble: str) -> Sweep:
    if ensemble == "npt":
        rows = [_row(300, 1.06), _row(600, 1.04), _row(700, 1.011, ca_sem=0.004, align=0.56, align_sem=0.05),
                _row(800, 1.0), _row(1000, 1.0)]
    else:
        rows = [_row(300, 1.064, p=0.6), _row(700, 1.064, p=0.14, p_sem=0.03), _row(1000, 1.064, p=0.02)]
    return Sweep(ensemble, "melchionna" if ensemble == "npt" else "langevin", phase.classify_rows(rows, ensemble),
                 PROTOCOLS["paper"])


def _drawn(svg: Path) -> dict[float, str]:
    return {float(t): p for t, p in re.findall(r'id="phase\|[^|]*\|([0-9.]+)\|([a-z]+)"', svg.read_text())}


@pytest.mark.parametrize("ensemble", ["npt", "nvt"])
def test_figures_results_and_tc_show_the_verdicts_phase(tmp_path, ensemble):
    sweep = _sweep(ensemble)
    decided = {r["T_K"]: verdicts.phase_decision(r, ensemble)[0] or "undecided" for r in sweep.rows}
    assert "undecided" in decided.values()  # the sweep has an undecided temperature
    stored = json.loads(json.dumps(sweep.to_dict()))  # as results.json stores it
    assert {r["T_K"]: r["phase"] for r in stored["rows"]} == decided
    plot = report.plot_npt if ensemble == "npt" else report.plot_nvt
    svg, _ = plot([("model", stored["rows"])], tmp_path / "fig", 760.0, 0.01 if ensemble == "npt" else 0.15)
    assert _drawn(svg) == decided
    svg_all, _ = plot([("a", stored["rows"]), ("b", stored["rows"])], tmp_path / "all", 760.0, 0.01)
    assert _drawn(svg_all) == decided
    if ensemble == "npt":  # Tc: the bracket of the verdicts' phases, in Sweep.tc and the regression quantities
        v = verdicts.tc_vs_experiment(sweep, "PBE")
        assert stored["tc"]["bracket_K"] == [v.details["tc_bracket"]["low"], v.details["tc_bracket"]["high"]]
        from pto_checks.results import sweep_quantities

        tc, err = sweep_quantities("npt_melchionna", stored["rows"], stored["tc"])["md.npt_melchionna.tc"]
        assert (tc, err) == (700.0, 100.0)


def test_temperatures_are_sorted_and_deduplicated_and_replicas_need_a_fixed_length():
    p = apply_overrides(PROTOCOLS["smoke"], ["md.temperatures_K=900,300,600,300"])
    assert p.md.temperatures_K == (300, 600, 900)
    with pytest.raises(ProtocolError, match="md.replicas"):
        apply_overrides(PROTOCOLS["smoke"], ["md.replicas=3", "md.max_steps=1200"])


def _write_samples(path: Path, samples: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["time_ps", *[k for k in samples[0] if k != "time_ps"]])
        w.writeheader()
        w.writerows(samples)


@pytest.mark.parametrize("polar", [True, False])
def test_analyze_decides_as_the_harness(tmp_path, capsys, polar):
    samples = _frames(1500, polar=polar, seed=2)
    f = tmp_path / "samples.csv"
    _write_samples(f, samples)
    row = analysis.summarize_run(analysis.read_samples(f), None, float(np.mean([s["T_K"] for s in samples])), 0.5)
    harness = phase.decide_phase(row, "npt")
    assert main(["analyze", str(f), str(f), "--json", "--ensemble", "npt", "--threshold", "c_over_a=1.03"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 2 and out[0] == out[1]
    assert out[0]["phase"] == harness.phase.value
    q = {x["name"]: x for x in out[0]["quantities"]}
    d = phase.row_decision(row, "c_over_a", 1.03)
    assert q["c_over_a"]["outcomes"][-1]["side"] == d.side.value
    assert (q["c_over_a"]["low"], q["c_over_a"]["high"]) == pytest.approx((d.interval.low, d.interval.high))
    assert q["c_over_a"]["level"] == 0.95 and q["c_over_a"]["equilibrated_start"] == row["stats"]["t0"]


def test_analyze_an_extxyz_trajectory(tmp_path, capsys):
    from ase.io import write

    from pto_checks import structures

    rng = np.random.default_rng(0)
    frames = []
    for i in range(60):
        at = structures.supercell(structures.tetragonal(a=3.90, c=4.15), 2)
        at.positions += 0.03 * rng.standard_normal(at.positions.shape)
        at.info.update(temperature_K=300.0, time_ps=0.02 * i)
        frames.append(at)
    f = tmp_path / "run.extxyz"
    write(f, frames, format="extxyz")
    assert main(["analyze", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)[0]
    assert out["kind"] == "trajectory" and out["frames"] == 60 and out["ensemble"] == "nvt"
    q = {x["name"]: x for x in out["quantities"]}
    assert q["c_over_a"]["mean"] == pytest.approx(4.15 / 3.90, rel=1e-6)


@pytest.mark.parametrize("content", ["not,a,header\n1,2,3\n", "time_ps,Pz\n0,abc\n1,2\n", None])
def test_analyze_refuses_an_unreadable_file_in_one_line(tmp_path, capsys, content):
    f = tmp_path / "bad.csv"
    if content is not None:
        f.write_text(content)
    assert main(["analyze", str(f)]) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith("pto-checks analyze: ") and "\n" not in err and str(f) in err
