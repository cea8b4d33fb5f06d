"""Every adapter exercised for real: load through the registry, one energy/forces/stress call.

Packaged weights (CHGNet, SevenNet) load as they ship; MACE, ORB and DeePMD models are built small
with the packages' own classes, saved, and loaded from file exactly as a user's file would be.
A family whose package is not installed in this environment is skipped with the install hint.
"""

from __future__ import annotations

import importlib.util

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
        pytest.skip("DGL-era matgl installed: the model runs (see tests/test_sanity.py --model m3gnet)")
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
