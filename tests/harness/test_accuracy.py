"""The accuracy tier's own tests: data discovery and fetching (checksums), metrics, cache, and the
tier failing on models wrong in each way (synthetic test oracles, :mod:`pto_checks.models.synthetic`)."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from pto_checks.accuracy import data
from pto_checks.accuracy.metrics import Predictions, errors, predict
from pto_checks.accuracy.stage import evaluate
from pto_checks.cache import Cache


@pytest.fixture(scope="module")
def local_data(tmp_path_factory):
    """The frames: a local copy, else fetched (checksummed) into a temporary cache, which is then
    exported as $PTO_CHECKS_DATA_DIR for the oracle models and the pytester runs; else skip."""
    try:
        root = data.ensure(tmp_path_factory.mktemp("aimd-cache"))
    except data.DataUnavailable as exc:
        pytest.skip(str(exc))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PTO_CHECKS_DATA_DIR", str(root.parent))
        yield root


@pytest.fixture
def mirror(local_data, tmp_path):
    """A copy of the data in the source repository's layout, served over HTTP on 127.0.0.1;
    yields (URL template, folder) so a test can corrupt a file before fetching."""
    site = tmp_path / "site"
    for key in data.SHA256:
        dst = site / data.upstream_path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data._file_in(local_data, key), dst)
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{{path}}", site
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


def test_local_copy_matches_the_recorded_checksums(local_data):
    data.verify(local_data)
    assert len(data.SHA256) == 21


def test_upstream_paths_follow_the_repository_layout():
    assert data.upstream_path("PT-450K/coord.npy") == "data/Task-I/PT-450K/deepmd/set.000/coord.npy"
    assert data.upstream_path("PT-900K/type.raw") == "data/Task-I/PT-900K/deepmd/type.raw"
    assert data.DEFAULT_URL.startswith("https://raw.githubusercontent.com/sliutheorygroup/UniPero/272193e/")


def test_fetch_from_a_mirror_verifies_and_caches(mirror, tmp_path):
    url, _ = mirror
    cache = tmp_path / "cache"
    got = data.fetch(cache, url=url)
    assert got == cache / data.DATASET
    data.verify(got)
    frames = data.load(got, 900, every=50)
    assert len(frames) == 5 and frames.n_total == 248


def test_fetch_refuses_a_checksum_mismatch_and_caches_nothing(mirror, tmp_path):
    url, site = mirror
    bad = site / data.upstream_path("PT-450K/force.npy")
    raw = bytearray(bad.read_bytes())
    raw[-1] ^= 0xFF
    bad.write_bytes(bytes(raw))
    cache = tmp_path / "cache"
    with pytest.raises(data.ChecksumMismatch, match="PT-450K/deepmd/set.000/force.npy"):
        data.fetch(cache, url=url)
    assert not (cache / data.DATASET).exists()
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_a_damaged_cached_download_is_fetched_again(mirror, tmp_path, monkeypatch):
    url, _ = mirror
    monkeypatch.setattr(data, "data_dirs", lambda: [tmp_path / "nothing"])
    monkeypatch.setenv("PTO_CHECKS_DATA_URL", url)
    cache = tmp_path / "cache"
    first = data.ensure(cache)
    (first / "PT-900K" / "virial.npy").write_bytes(b"truncated")
    again = data.ensure(cache)
    data.verify(again)


def test_fetch_from_file_urls(local_data, tmp_path):
    got = data.fetch(tmp_path / "c", [300], url=f"file://{_mirror_folder(local_data, tmp_path)}/{{path}}")
    data.verify(got, data.keys_for([300]))


def _mirror_folder(local_data: Path, tmp_path: Path) -> Path:
    site = tmp_path / "file-site"
    for key in data.keys_for([300]):
        dst = site / data.upstream_path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data._file_in(local_data, key), dst)
    return site


def test_a_corrupt_local_copy_is_an_error(local_data, tmp_path, monkeypatch):
    copy = tmp_path / "d" / data.DATASET
    for key in data.SHA256:
        (copy / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data._file_in(local_data, key), copy / key)
    (copy / "PT-300K" / "energy.npy").chmod(0o644)
    (copy / "PT-300K" / "energy.npy").write_bytes(b"not the data")
    monkeypatch.setenv("PTO_CHECKS_DATA_DIR", str(tmp_path / "d"))
    with pytest.raises(data.ChecksumMismatch, match="PT-300K/energy.npy"):
        data.find_local()


def test_no_data_and_no_network_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "data_dirs", lambda: [tmp_path / "nothing"])
    monkeypatch.setenv("PTO_CHECKS_DATA_URL", "http://127.0.0.1:9/{path}")  # discard port: refused
    with pytest.raises(data.DataUnavailable) as info:
        data.ensure(tmp_path / "cache")
    msg = str(info.value)
    assert "\n" not in msg and "fix:" in msg and "PTO_CHECKS_DATA_DIR" in msg
    assert not (tmp_path / "cache" / data.DATASET).exists()


def test_tier_skips_without_data_with_the_fix(pytester, check_files, tmp_path):
    check_files("test_accuracy.py")
    pytester.makeconftest(f"""
import os
from pathlib import Path
from pto_checks.accuracy import data
data.data_dirs = lambda: [Path({str(tmp_path / 'nothing')!r})]   # no local copy anywhere
os.environ["PTO_CHECKS_DATA_URL"] = "http://127.0.0.1:9/{{path}}"  # and no network (port 9: refused)
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=synthetic:good", "-rs",
                                           f"--pto-cache={tmp_path / 'cache'}")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*SKIPPED*AIMD frames not found locally*fix: put the UniPero frames*"])


def test_metrics_of_known_errors(local_data):
    frames = data.load(local_data, 300, every=30)
    rng = np.random.default_rng(1)
    noise = 0.1 * rng.standard_normal(frames.forces.shape)
    pred = Predictions(frames.energy + 7.0 + 0.04 * np.arange(len(frames)), frames.forces + noise,
                       frames.stress + 0.5 * 0.00624150907 * np.eye(3))  # +0.5 GPa tensile on the diagonal
    e = errors(frames, pred)
    assert e.force_rmse_eV_A == pytest.approx(np.sqrt(np.mean(noise**2)))
    ramp = 0.04 * np.arange(len(frames))
    assert e.energy_rmse_meV_atom == pytest.approx(np.std(ramp) / 40 * 1000)  # the constant 7 eV cancels
    assert e.stress_offset_GPa == pytest.approx(-0.5, rel=1e-3)
    assert e.stress_rmse_after_offset_GPa == pytest.approx(0.0, abs=1e-6)
    assert e.stress_rmse_GPa == pytest.approx(0.5 * np.sqrt(3 / 9), rel=1e-3)
    assert set(e.force_rmse_species_eV_A) == {"Pb", "Ti", "O"}


def test_cache_hit_and_keys(local_data, tmp_path):
    from pto_checks import models as registry

    model = registry.load_model(registry.get_spec("synthetic:aimd_oracle"), "cpu")
    cache = Cache(tmp_path / "cache")
    first = evaluate(model, local_data, 900, cache, every=40)
    again = evaluate(model, local_data, 900, cache, every=40)
    other = evaluate(model, local_data, 900, cache, every=41)
    assert not first.cache_hit and again.cache_hit and not other.cache_hit
    assert again.errors == first.errors and first.errors.force_rmse_eV_A == 0.0
    assert np.array_equal(again.predictions.forces, first.predictions.forces)


def test_chgnet_force_rmse_matches_an_independent_computation(local_data):
    """Cross-check on real CHGNet: the pipeline's force RMSE and stress sign against a plain
    np.load + ASE + numpy computation on the same frames."""
    pytest.importorskip("chgnet")
    from ase import Atoms
    from chgnet.model.dynamics import CHGNetCalculator

    from pto_checks import models as registry

    frames = data.load(local_data, 900, every=31)  # frames 0, 31, ..., 217
    model = registry.load_model(registry.get_spec("chgnet"), "cpu")
    e = errors(frames, predict(model.calculator, frames))

    def path(name):
        return data._file_in(local_data, f"PT-900K/{name}")

    coord, box = np.load(path("coord.npy")), np.load(path("box.npy"))
    force, virial = np.load(path("force.npy")), np.load(path("virial.npy"))
    types = path("type.raw").read_text().split()
    symbols = [("Pb", "Ti", "O")[int(t)] for t in types]
    calc = CHGNetCalculator(use_device="cpu")
    sq, model_s, dft_s = [], [], []
    for i in range(0, 248, 31):
        atoms = Atoms(symbols, positions=coord[i].reshape(-1, 3), cell=box[i].reshape(3, 3), pbc=True)
        atoms.calc = calc
        sq.append((atoms.get_forces() - force[i].reshape(-1, 3)) ** 2)
        model_s.append(atoms.get_stress(voigt=False).diagonal())
        dft_s.append(-virial[i].reshape(3, 3).diagonal() / atoms.get_volume())
    independent = float(np.sqrt(np.mean(sq)))
    assert e.force_rmse_eV_A == pytest.approx(independent, rel=1e-6)
    # sign convention: CHGNet's ASE stress follows -virial/V frame to frame (r = +0.99 on 31 frames)
    model_s, dft_s = np.array(model_s), np.array(dft_s)
    for k in range(3):
        assert np.corrcoef(model_s[:, k], dft_s[:, k])[0, 1] > 0.8


@pytest.fixture
def run_tier(pytester, check_files, local_data):
    check_files("test_accuracy.py")

    def run(models: str):
        out = pytester.path / "out"
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--model={models}", "--protocol=smoke",
                                               f"--pto-cache={pytester.path / 'cache'}", f"--report={out}",
                                               f"--junitxml={out / 'junit.xml'}")
        return result, json.loads((out / "results.json").read_text()), (out / "junit.xml").read_text()

    return run


def test_tier_fails_each_flawed_model_and_passes_the_oracle(run_tier):
    variants = ("aimd_oracle", "aimd_force_noise", "aimd_energy_drift", "aimd_gpa_stress")
    result, res, junit = run_tier(",".join(f"synthetic:{v}" for v in variants))
    status = {v: {k.split("::")[-1]: c["status"] for k, c in res["models"][f"synthetic:{v}"]["checks"].items()}
              for v in variants}
    names = ("test_force_error_vs_dft_force_scale", "test_relative_energy_error", "test_stress_error")
    expect = {"aimd_oracle": (), "aimd_force_noise": (names[0],), "aimd_energy_drift": (names[1],),
              "aimd_gpa_stress": (names[2],)}
    for v, failing in expect.items():
        assert status[v] == {n: ("fail" if n in failing else "pass") for n in names}, (v, status[v])
    q = res["models"]["synthetic:aimd_oracle"]["quantities"]["accuracy"]
    assert q["T300K"]["value"]["force_rmse_eV_A"] == 0.0
    assert q["subsample"]["value"]["every"] == 10  # the smoke protocol's stated subsample
    msg = res["models"]["synthetic:aimd_energy_drift"]["checks"]["test_accuracy.py::test_relative_energy_error"]
    assert "REDUCED subsample" in msg["message"] and "trained on PBEsol" in msg["message"]
    assert 'name="energy_rmse_meV_atom_300K"' in junit and 'name="force_rmse_eV_A_900K"' in junit
    assert Path(q["files"]["value"]["parity"]).is_file()
    assert result.ret == 1
