"""The registry: names, parametrised forms, model files, entry points, errors that name the fix."""

from __future__ import annotations

import importlib.metadata

import pytest

from pto_checks import models
from pto_checks.models.base import ModelSpec, ModelUnavailable, require


def test_builtin_names_and_specs():
    names = models.available_names()
    for n in ("chgnet", "sevennet", "m3gnet", "mace", "orb", "gptff"):
        assert n in names
        spec = models.get_spec(n)
        assert spec.functional and spec.weights_source and spec.version
    assert models.get_spec("chgnet").version == "0.3.0"
    assert models.get_spec("sevennet").version == "7net-l3i5"


def test_unknown_name_lists_known_and_forms():
    with pytest.raises(ModelUnavailable) as exc:
        models.get_spec("chgnett")
    msg = str(exc.value)
    assert exc.value.kind == "unknown" and "chgnet" in msg and "mace:PATH" in msg and "--model-file" in msg


def test_all_and_comma_lists_expand_without_duplicates():
    specs = models.specs_for(["chgnet,sevennet", "all"])
    names = [s.name for s in specs]
    assert names[:2] == ["chgnet", "sevennet"] and len(names) == len(set(names))
    assert "synthetic:good" not in names


def test_parametrised_forms():
    assert models.get_spec("mace:/x/y.model").options == {"path": "/x/y.model"}
    assert models.get_spec("deepmd:/m.pth").family == "deepmd"
    assert models.get_spec("synthetic:good").in_all is False
    with pytest.raises(ModelUnavailable):
        models.get_spec("synthetic:nope")


def test_missing_package_names_the_extra():
    with pytest.raises(ModelUnavailable) as exc:
        require("no_such_package_xyz", model="m", extra="orb")
    assert exc.value.kind == "package" and "pip install 'pto-checks[orb]'" in str(exc.value)


def test_missing_mace_names_the_route_that_imports(tmp_path, monkeypatch):
    """mace-torch's own pin (e3nn 0.4.4) cannot import under torch >= 2.6: the fix installs the extra,
    then mace-torch without its pin; an import that fails with another error than ImportError (as
    e3nn 0.4.4's UnpicklingError) is reported on one line with the same fix."""
    with pytest.raises(ModelUnavailable) as exc:
        require("no_such_package_xyz", model="m", extra="mace")
    msg = str(exc.value)
    assert "pip install 'pto-checks[mace]' && pip install --no-deps 'mace-torch==0.3.16'" in msg
    (tmp_path / "broken_e3nn_like.py").write_text(
        "import pickle\nraise pickle.UnpicklingError('Weights only load failed.\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelUnavailable) as exc:
        require("broken_e3nn_like", model="m", extra="mace")
    msg = str(exc.value)
    assert "UnpicklingError: Weights only load failed." in msg and "second line" not in msg
    assert "--no-deps 'mace-torch==0.3.16'" in msg


def test_missing_weights_file_says_where(tmp_path):
    with pytest.raises(ModelUnavailable) as exc:
        models.load_model(f"deepmd:{tmp_path}/absent.pth", "cpu")
    assert exc.value.kind == "weights" and "absent.pth" in str(exc.value)


def test_gptff_weights_search_path_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("PTO_CHECKS_MODELS_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    from pto_checks.models import base

    monkeypatch.setattr(base, "shared_models_dirs", lambda: [tmp_path])
    with pytest.raises(ModelUnavailable) as exc:
        models.load_model("gptff", "cpu")
    assert str(tmp_path) in str(exc.value) and "PTO_CHECKS_MODELS_DIR" in str(exc.value)


def test_model_file_registers_ase_calculator(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('[models.my-emt]\nfamily = "ase"\nfunctional = "none"\n'
                 '[models.my-emt.options]\nfactory = "ase.calculators.emt:EMT"\n')
    (spec,) = models.load_model_file(f)
    loaded = models.load_model("my-emt", "cpu")
    assert spec.name == "my-emt" and loaded.spec.family == "ase"


def test_entry_point_registration(monkeypatch):
    def provide():
        return ModelSpec("ep-model", "ase", "1", "PBE", "entry point", models._lazy("generic"),
                         options={"factory": "ase.calculators.emt:EMT"})

    class EP:
        name = "x"

        def load(self):
            return provide

    real = importlib.metadata.entry_points

    def fake(**kw):
        return [EP()] if kw.get("group") == models.ENTRY_POINT_GROUP else real(**kw)

    monkeypatch.setattr(models, "_entry_points_loaded", False)
    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    assert models.get_spec("ep-model").weights_source == "entry point"


def test_device_resolution():
    assert models.resolve_device("cpu") == "cpu"
    assert models.resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ValueError, match="--device"):
        models.resolve_device("tpu")


def test_synthetic_fingerprints_differ():
    a = models.load_model("synthetic:good", "cpu").fingerprint
    b = models.load_model("synthetic:shallow", "cpu").fingerprint
    assert a != b
