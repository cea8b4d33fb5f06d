"""``pto-checks run`` across environments: routing, missing environments, merged results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pto_checks import cli, environments, models


def test_families_go_to_their_environments(tmp_path):
    key = lambda name: environments.env_key(models.get_spec(name))  # noqa: E731
    assert key("chgnet") == "main" and key("sevennet") == "main" and key("mace:x.model") == "main"
    assert key("m3gnet") == "m3gnet" and key("gptff") == "gptff" and key("gptff:w.pth") == "gptff"
    assert key("deepmd:model.pth") == "main" and key("deepmd:unipero.pb") == "deepmd-tf"
    assert environments.install_command(models.get_spec("deepmd:u.pb")) == "bash scripts/install.sh deepmd-tf"


def test_environment_found_from_option_variable_and_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PTO_CHECKS_ENV_GPTFF", raising=False)
    assert environments.find_python("gptff", {"gptff": str(tmp_path / "nowhere")}) is None
    monkeypatch.setenv("PTO_CHECKS_ENV_GPTFF", sys.prefix)
    assert environments.find_python("gptff") == Path(sys.prefix) / "bin" / "python"
    monkeypatch.delenv("PTO_CHECKS_ENV_GPTFF")
    (tmp_path / ".venv-gptff" / "bin").mkdir(parents=True)
    (tmp_path / ".venv-gptff" / "bin" / "python").symlink_to(sys.executable)
    assert environments.find_python("gptff") == tmp_path / ".venv-gptff" / "bin" / "python"


def test_missing_environment_is_one_line_naming_the_install_command(tmp_path, capsys):
    rc = cli.main(["run", "--env", f"gptff={tmp_path / 'absent'}", "--env", f"m3gnet={tmp_path / 'absent'}",
                   "--model", "gptff,m3gnet", "--report", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 4
    assert "model 'gptff' skipped: environment .venv-gptff not found: bash scripts/install.sh gptff" in out
    assert "bash scripts/install.sh m3gnet" in out
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [u["model"] for u in data["unavailable"]] == ["gptff", "m3gnet"]


def test_models_of_two_environments_merge_into_one_report(tmp_path, monkeypatch, capsys):
    """Two pytest processes (here the same interpreter stands in for the GPTFF environment)."""
    monkeypatch.setattr(environments, "env_key", lambda spec: "gptff" if spec.options.get("variant") == "nan"
                        else "main")
    rc = cli.main(["run", "--cache", str(tmp_path / "cache"), "--env", f"gptff={sys.prefix}",
                   "--env", f"main={sys.prefix}", "-m", "sanity", "-k", "forces_finite",
                   "--model", "synthetic:good,synthetic:nan", "--report", str(tmp_path / "out")])
    assert rc == 1  # synthetic:nan fails its check: a result, not an error
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    good, nan = data["models"]["synthetic:good"], data["models"]["synthetic:nan"]
    assert good["environment"]["key"] == "main" and nan["environment"]["key"] == "gptff"
    assert good["checks"]["test_sanity.py::test_forces_finite"]["status"] == "pass"
    assert nan["checks"]["test_sanity.py::test_forces_finite"]["status"] == "fail"
    assert set(data["environments"]) == {"main", "gptff"}
    assert data["environments"]["gptff"]["packages"]["ase"]
    assert (tmp_path / "out" / "report.html").is_file()
    assert (tmp_path / "out" / "environments" / "gptff" / "results.json").is_file()


def test_runs_across_environments_accumulate_and_nightly_runs_across_them(tmp_path, monkeypatch, capsys):
    """A second `pto-checks run` into the same --report DIR keeps the models of the environment it
    did not run (results accumulate, as in one pytest run); `pto-checks nightly` routes models to
    their environments too, and a failed verdict there is a result (exit 0), an error is not."""
    from pto_checks.results import validate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(environments, "env_key", lambda spec: "gptff" if spec.options.get("variant") == "nan"
                        else "main")
    envs = ["--env", f"gptff={sys.prefix}", "--env", f"main={sys.prefix}"]
    run = ["run", "--cache", str(tmp_path / "cache"), *envs, "-m", "sanity", "-k", "forces_finite"]
    assert cli.main([*run, "--model", "synthetic:good,synthetic:nan", "--report", str(tmp_path / "out")]) == 1
    assert cli.main([*run, "--model", "synthetic:good", "--report", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(data["models"]) == {"synthetic:good", "synthetic:nan"}
    assert data["models"]["synthetic:nan"]["environment"]["key"] == "gptff"
    assert set(data["environments"]) == {"main", "gptff"} and len(data["runs"]) == 3  # main twice, gptff once
    validate(data)
    night = ["nightly", str(tmp_path / "n"), *envs, "-m", "sanity", "--model", "synthetic:good,synthetic:nan"]
    assert cli.main(night) == cli.NIGHTLY_OK
    assert cli.main([*night, "--fail-on-verdict"]) == cli.NIGHTLY_FAILED_VERDICTS
    last = sorted((tmp_path / "n").glob("*/results.json"))[-1]
    night_data = json.loads(last.read_text())
    assert {m["environment"]["key"] for m in night_data["models"].values()} == {"main", "gptff"}
    assert (last.parent / "report.html").is_file()
