"""The cache (keys, atomicity, one computation across processes) and the results file."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from pto_checks.cache import Cache, cache_key, write_json_atomic
from pto_checks.results import Results, load, merge


def test_key_is_stable_and_sensitive():
    base = {"model": {"fingerprint": "abc"}, "protocol": {"fmax": 1e-3}}
    assert cache_key("ground_state", **base) == cache_key("ground_state", **dict(base))
    assert cache_key("ground_state", **base) != cache_key("phonons", **base)
    other = {"model": {"fingerprint": "abd"}, "protocol": {"fmax": 1e-3}}
    assert cache_key("ground_state", **base) != cache_key("ground_state", **other)
    assert cache_key("ground_state", **base) != cache_key("ground_state", **base, seed=1)


def test_get_or_compute_hits_after_miss(tmp_path):
    cache = Cache(tmp_path)
    calls = []

    def compute(folder: Path):
        calls.append(1)
        (folder / "x.txt").write_text("hi")
        return {"v": 1}

    f1, d1, hit1 = cache.get_or_compute("s", "k", compute)
    f2, d2, hit2 = cache.get_or_compute("s", "k", compute)
    assert (hit1, hit2) == (False, True) and d1 == d2 == {"v": 1} and len(calls) == 1
    assert (f2 / "x.txt").read_text() == "hi"
    _, _, hit3 = Cache(tmp_path, enabled=False).get_or_compute("s", "k", compute)
    assert hit3 is False and len(calls) == 2


def test_interrupted_compute_leaves_no_entry(tmp_path):
    cache = Cache(tmp_path)

    def boom(folder: Path):
        (folder / "partial").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute("s", "k", boom)
    assert not cache.entry("s", "k").exists()
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["k.lock"]


def _worker(root: str, log: str) -> None:
    import time

    def compute(folder: Path):
        with open(log, "a") as fh:
            fh.write("computed\n")
        time.sleep(0.5)
        return {"ok": True}

    Cache(root).get_or_compute("s", "same", compute)


def test_two_processes_compute_once(tmp_path):
    log = tmp_path / "log"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "c"), str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert log.read_text().count("computed") == 1


def test_atomic_json_write(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_results_merge_and_schema(tmp_path):
    r1, r2 = Results({"name": "smoke"}), Results({"name": "smoke"})
    r1.quantity("m1", "ground_state", "a", 3.9, "Angstrom")
    r1.check("m1", "test_static.py::test_x", "pass")
    r2.quantity("m1", "phonons", "f_min", 0.1, "THz")
    r2.check("m2", "test_static.py::test_x", "fail", message="bad")
    merged = merge([r1.data, r2.data])
    a = merged["models"]["m1"]["quantities"]["ground_state"]["a"]
    assert (a["value"], a["unit"], a["protocol"]) == (3.9, "Angstrom", "smoke")
    assert merged["models"]["m1"]["quantities"]["phonons"]["f_min"]["unit"] == "THz"
    assert merged["models"]["m2"]["checks"]["test_static.py::test_x"]["status"] == "fail"
    write_json_atomic(tmp_path / "r.json", merged)
    assert load(tmp_path / "r.json")["schema_version"] == 2


def test_integrator_flips_are_marked():
    from pto_checks.results import annotate_integrator_flips

    r = Results()
    r.check("m", "test_dynamic.py::test_cubic_above_tc", "fail")
    r.check("m", "test_dynamic.py::test_cubic_above_tc[mtk]", "pass")
    r.check("m", "test_dynamic.py::test_tc_vs_experiment", "fail")
    r.check("m", "test_dynamic.py::test_tc_vs_experiment[mtk]", "fail")
    data = annotate_integrator_flips(r.data)
    assert data["models"]["m"]["integrator_artefacts"] == [
        {"check": "test_dynamic.py::test_cubic_above_tc", "melchionna": "fail", "mtk": "pass"}]
