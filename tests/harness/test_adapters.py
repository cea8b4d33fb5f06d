"""Every adapter exercised for real: load through the registry, one energy/forces/stress call.

Packaged weights (CHGNet, SevenNet) load as they ship; MACE, ORB and DeePMD models are built small
with the packages' own classes, saved, and loaded from file exactly as a user's file would be.
A family whose package is not installed in this environment is skipped with the install hint.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from pto_checks import models, structures
from tests.harness import small_models


def _need(module: str, extra: str):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed: bash scripts/install.sh {extra} (README, 'Installing model families')")


def _exercise(loaded: models.LoadedModel) -> None:
    atoms = structures.supercell(structures.tetragonal(), 2, 1, 1)
    atoms.rattle(0.02, seed=0)
    atoms.calc = loaded.calculator
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    s = atoms.get_stress()
    assert np.isfinite(e) and f.shape == (10, 3) and np.all(np.isfinite(f))
    assert s.shape == (6,) and np.all(np.isfinite(s))
    assert len(loaded.fingerprint) == 64


@pytest.mark.parametrize("name", ["chgnet", "chgnet-r2scan", "sevennet", "sevennet-0"])
def test_packaged_weights(name):
    spec = models.get_spec(name)
    _need({"chgnet": "chgnet", "sevennet": "sevenn"}[spec.family], spec.extra)
    loaded = models.load_model(name, device="cpu")
    _exercise(loaded)
    assert loaded.to_dict()["functional"] in ("PBE", "r2SCAN")


def test_fingerprint_distinguishes_weights():
    _need("chgnet", "chgnet")
    a = models.load_model("chgnet", "cpu").fingerprint
    b = models.load_model("chgnet-0.2.0", "cpu").fingerprint
    assert a != b
    assert a == models.load_model("chgnet", "cpu").fingerprint


def test_mace_model_file(tmp_path):
    _need("mace", "mace")
    path = small_models.mace_model_file(tmp_path / "small.model")
    loaded = models.load_model(f"mace:{path}", "cpu")
    _exercise(loaded)
    assert loaded.spec.family == "mace" and loaded.weights_files == [str(path)]


MACE_E3NN044 = Path(__file__).parent / "data" / "mace-e3nn044"


def _mace_matches_reference(loaded: models.LoadedModel) -> float:
    """Largest |difference| in E (eV), F (eV/A), stress (eV/A^3) from the numbers of MACE's own pins."""
    from ase import Atoms

    ref = json.loads((MACE_E3NN044 / "reference.json").read_text())
    worst = 0.0
    for cell in ref["cells"].values():
        atoms = Atoms(cell["symbols"], positions=cell["positions"], cell=cell["cell"], pbc=True)
        atoms.calc = loaded.calculator
        for got, want in ((atoms.get_potential_energy(), cell["energy"]), (atoms.get_forces(), cell["forces"]),
                          (atoms.get_stress(), cell["stress"])):
            worst = max(worst, float(np.max(np.abs(np.asarray(got) - np.asarray(want)))))
    return worst


def test_mace_file_saved_under_mace_pins(tmp_path, monkeypatch):
    """A MACE file pickled under mace-torch's pinned e3nn 0.4.4 runs here, as it ran there (1e-6).

    ``scripts/make_mace_e3nn044_fixture.py`` built the file with MACE's classes and ``torch.save``
    under mace-torch 0.3.16 + e3nn 0.4.4 + torch 2.5.1 and computed the reference numbers there.
    Under e3nn >= 0.5 ``torch.load`` of it fails, so the adapter rebuilds it once (cached by the
    file's SHA-256, which stays the fingerprint); both ``mace:FILE`` and the hub's offline form
    ``mace_mp(model=FILE)`` load it.
    """
    _need("mace", "mace")
    monkeypatch.setenv("PTO_CHECKS_MACE_CACHE", str(tmp_path / "cache"))
    path = MACE_E3NN044 / "small.model"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = models.load_model(f"mace:{path}", "cpu")
    assert loaded.fingerprint == sha and loaded.weights_files == [str(path)]
    assert _mace_matches_reference(loaded) < 1e-6
    import e3nn

    if e3nn.__version__.startswith("0.4."):
        return  # mace-torch's own environment: the file loads as saved
    assert loaded.details["converted_for_e3nn"] == e3nn.__version__
    converted = Path(loaded.details["converted_file"])
    assert converted.parent == tmp_path / "cache" and sha in converted.name
    # the hub's offline path: mace_mp(model=FILE), from the cache this time
    hub = models.ModelSpec("mace-hub-file", "mace", "custom", "PBE", str(path), models.get_spec("mace").loader,
                           options={"hub": str(path)})
    again = models.load_model(hub, "cpu")
    assert again.fingerprint == sha and again.details["converted_file"] == str(converted)
    assert _mace_matches_reference(again) < 1e-6
    # a corrupt cache entry is rebuilt, never used
    converted.write_bytes(b"truncated")
    assert _mace_matches_reference(models.load_model(f"mace:{path}", "cpu")) < 1e-6


def test_mace_conversion_reproduces_weights_not_just_shape(tmp_path, monkeypatch):
    """The 1e-6 comparison can fail: the same architecture with other weights misses the reference."""
    _need("mace", "mace")
    import torch

    from pto_checks.models import mace_convert

    monkeypatch.setenv("PTO_CHECKS_MACE_CACHE", str(tmp_path / "cache"))
    rebuilt = mace_convert.rebuild(mace_convert.read_foreign(MACE_E3NN044 / "small.model"))
    with torch.no_grad():
        for p in rebuilt.parameters():
            p.add_(0.01 * torch.randn_like(p))
    wrong = tmp_path / "perturbed.model"
    torch.save(rebuilt, wrong)
    assert _mace_matches_reference(models.load_model(f"mace:{wrong}", "cpu")) > 1e-4


def test_orb_state_dict_via_model_file(tmp_path):
    _need("orb_models", "orb")
    toml = small_models.orb_model_files(tmp_path)
    (spec,) = models.load_model_file(toml)
    loaded = models.load_model(spec, "cpu")
    _exercise(loaded)


def test_deepmd_frozen_model(tmp_path):
    _need("deepmd", "deepmd")
    path = small_models.deepmd_model_file(tmp_path)
    loaded = models.load_model(f"deepmd:{path}", "cpu")
    _exercise(loaded)


def test_deepmd_frozen_tensorflow_graph(tmp_path):
    """A frozen TensorFlow graph (.pb, as UniPero is published) through --model deepmd:FILE.pb.

    Runs where deepmd-kit has its TensorFlow backend (``bash scripts/install.sh deepmd-tf``).
    """
    _need("deepmd", "deepmd-tf")
    _need("tensorflow", "deepmd-tf")
    path = small_models.deepmd_model_file(tmp_path, backend="tf")
    assert path.suffix == ".pb"
    loaded = models.load_model(f"deepmd:{path}", "cpu")
    _exercise(loaded)
    assert loaded.package_versions.get("deepmd-kit")


def test_generic_ase_calculator():
    loaded = models.load_model("ase:ase.calculators.emt:EMT", "cpu")
    from ase.build import bulk

    cu = bulk("Cu", "fcc", a=3.6)
    cu.calc = loaded.calculator
    assert np.isfinite(cu.get_potential_energy())


def test_m3gnet_dgl_era_weights_refused_under_pyg_matgl():
    """matgl >= 2 gives wrong oxide energies with the DGL-era files: the adapter refuses, with the fix."""
    _need("matgl", "m3gnet")
    from pto_checks.models.m3gnet import _matgl_major

    if _matgl_major() < 2:
        pytest.skip("DGL-era matgl installed: the model runs (see pto_checks/checks/test_sanity.py --model m3gnet)")
    with pytest.raises(models.ModelUnavailable) as exc:
        models.load_model("m3gnet", "cpu")
    assert exc.value.kind == "broken" and "dgl" in str(exc.value).lower()


def test_gptff_missing_is_a_clear_error(tmp_path):
    weights = tmp_path / "gptff_v2.pth"
    weights.write_bytes(b"not really weights")
    if importlib.util.find_spec("gptff") is not None:
        pytest.skip("gptff installed")
    with pytest.raises(models.ModelUnavailable) as exc:
        models.load_model(f"gptff:{weights}", "cpu")
    assert exc.value.kind == "package" and "not on PyPI" in str(exc.value)
