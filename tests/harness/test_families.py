"""The family records are the one description of each model family: everything derived from them
(registry forms, validation, environment routing, the CLI's list of forms, install.sh's lists) agrees,
and what cannot be derived (pyproject extras, constraints files, adapters, install.sh) is checked here."""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import pytest

from pto_checks import cli, environments, models, validate
from pto_checks.models.adapter import Adapter, BatchedAdapter
from pto_checks.models.families import ENVIRONMENTS, FAMILIES, forms, install_plan
from pto_checks.reference import tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_extras_are_the_records_requirements():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for fam in FAMILIES.values():
        if fam.extra is not None:
            assert extras.get(fam.extra) == list(fam.requirements), fam.name
        else:
            assert not fam.requirements, fam.name


def test_every_environment_has_its_constraints_file_and_install_sh_uses_it():
    script = (ROOT / "scripts" / "install.sh").read_text()
    for env in ENVIRONMENTS.values():
        assert (ROOT / env.constraints).is_file(), env.constraints
        assert f"-c {env.constraints}" in script, env.key
        assert f"{env.folder}/bin/pip" in script, env.key


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_has_an_adapter_and_a_working_form(family):
    fam = FAMILIES[family]
    module = importlib.import_module(f"pto_checks.models.{fam.adapter}")
    assert isinstance(module, Adapter), f"pto_checks.models.{fam.adapter} has no load(spec, device)"
    # the record says whether the adapter has the batched interface; the module agrees either way
    assert isinstance(module, BatchedAdapter) == fam.batched, family
    arg = fam.form.split(":", 1)[1]
    spec = models.get_spec(f"{family}:{arg}")
    assert spec.family == family and spec.options == {fam.path_option: arg} and spec.extra == fam.extra
    assert spec.functional == fam.functional and spec.energy_reference == fam.energy_reference
    assert environments.env_key(spec) == fam.environment
    assert validate.FILE_OPTIONS.get(family) == fam.file_option
    for suffix, key in fam.environment_by_suffix:
        assert environments.env_key(models.get_spec(f"{family}:model{suffix}")) == key
    assert fam.environment in environments.LAYOUT


def test_builtin_models_take_loader_and_extra_from_their_family():
    for name in models.available_names(include_hidden=True):
        spec = models.get_spec(name)
        if spec.family in FAMILIES:
            assert spec.extra == FAMILIES[spec.family].extra, name
            assert spec.loader.__name__ == f"load_{FAMILIES[spec.family].adapter}", name


def test_cli_and_unknown_name_message_list_every_form(capsys):
    import argparse

    cli._models(argparse.Namespace(model_file=[]))
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "also: " + " ".join(forms())
    with pytest.raises(models.ModelUnavailable) as exc:
        models.get_spec("no-such-model")
    assert all(f in str(exc.value) for f in forms())


def test_install_sh_reads_the_install_plan():
    plan = subprocess.run(["python3", str(ROOT / "pto_checks" / "models" / "families.py"), "--install-plan"],
                          capture_output=True, text=True, check=True).stdout
    values = dict(line.split("=", 1) for line in plan.splitlines())
    assert values["ALL"].strip('"').split() == install_plan()["ALL"]
    assert set(install_plan()["MAIN_EXTRAS"]) <= set(install_plan()["MAIN"])
    script = (ROOT / "scripts" / "install.sh").read_text()
    assert "pto_checks/models/families.py --install-plan" in script
    for family in install_plan()["TARGETS"]:  # the usage line names every target
        assert family in script.splitlines()[3] + script.splitlines()[4], family
    r = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh"), "no-such-family"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "unknown family 'no-such-family'" in r.stderr
