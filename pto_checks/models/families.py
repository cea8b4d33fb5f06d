"""One record per model family and per Python environment: the single description from which the
registry's ``FAMILY:PATH`` forms, start-up validation, environment routing, the CLI's list of forms and
``scripts/install.sh``'s family lists are derived (``tests/harness/test_families.py`` fails when the
pyproject extras, constraints files, adapters or install script drift from it).

A new family is its adapter module ``pto_checks/models/<adapter>.py`` (an
:class:`~pto_checks.models.adapter.Adapter`: ``load(spec, device)``; with ``batched=True`` also a
``BatchedAdapter``) plus one :class:`Family` record in :data:`FAMILIES` (and, if it installs by a pip
extra, that extra in ``pyproject.toml``, equal to :attr:`Family.requirements`).

Standard library only: ``scripts/install.sh`` runs this file with the system Python before any
environment exists (``python3 pto_checks/models/families.py --install-plan``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Environment:
    """A virtual environment of the install layout (``scripts/install.sh`` builds it).

    ``folder``: the virtualenv, relative to the checkout (or the current directory);
    ``constraints``: the pip constraints file every install into it uses;
    ``default_install``: the ``install.sh`` arguments that build it, as a missing-environment message
    names them; ``in_all``: built by ``install.sh all``; ``routed``: ``pto-checks run`` sends models
    there (``--env KEY=PATH``); an environment that is not routed is a tool (e.g. regenerating a
    test file under an old package's pins)."""

    key: str
    folder: str
    constraints: str
    default_install: str
    in_all: bool = True
    routed: bool = True
    description: str = ""


@dataclass(frozen=True)
class Family:
    """A model family: the adapter that loads it and everything needed to install, route and name it.

    ``adapter``: module ``pto_checks.models.<adapter>`` with ``load(spec, device)``;
    ``extra``: the pyproject extra (``pip install 'pto-checks[extra]'``), ``None`` where the package
    is not on PyPI; ``requirements``: that extra's requirement strings (a test asserts pyproject agrees);
    ``dists``: distributions whose versions are recorded with each result;
    ``environment``: the :class:`Environment` key it runs in, ``environment_by_suffix``: another one
    for model files of a suffix (frozen TensorFlow graphs); ``functional``: the DFT level of theory
    assumed for a ``FAMILY:PATH`` model (``unknown`` where the file does not say);
    ``path_option``: the adapter option the ARG of ``FAMILY:ARG`` fills; ``form``: how that form is
    written in help texts; ``file_option``: an option that must name an existing local file, checked
    before any work; ``batched``: the adapter is a :class:`~pto_checks.models.adapter.BatchedAdapter`
    (the batched MD engine's device-side interface); ``install_by_extra``: ``install.sh`` installs the
    family by its extra alone (other families have a recipe of their own there: pins, source
    builds)."""

    name: str
    adapter: str
    extra: str | None
    requirements: tuple[str, ...]
    dists: tuple[str, ...]
    environment: str
    functional: str
    path_option: str
    form: str
    file_option: str | None = None
    energy_reference: str | None = None
    environment_by_suffix: tuple[tuple[str, str], ...] = ()
    install_by_extra: bool = False
    batched: bool = False
    installable: bool = True
    description: str = ""

    @property
    def constraints(self) -> str:
        """The constraints file of the family's environment."""
        return ENVIRONMENTS[self.environment].constraints


ENVIRONMENTS: dict[str, Environment] = {e.key: e for e in [
    Environment("main", ".venv", "constraints/cpu.txt", "chgnet sevennet",
                description="harness + chgnet, sevennet, orb, mace, deepmd (one environment)"),
    Environment("m3gnet", ".venv-m3gnet", "constraints/m3gnet-dgl.txt", "m3gnet",
                description="M3GNet on matgl's DGL backend (needs an older torch)"),
    Environment("gptff", ".venv-gptff", "constraints/gptff.txt", "gptff",
                description="GPTFF (pins ase < 3.29)"),
    Environment("deepmd-tf", ".venv-deepmd-tf", "constraints/deepmd-tf.txt", "deepmd-tf",
                description="deepmd-kit's TensorFlow backend (frozen .pb graphs); no torch"),
    Environment("mace-legacy", ".venv-mace-legacy", "constraints/mace-legacy.txt", "mace-legacy",
                in_all=False, routed=False,
                description="mace-torch with the e3nn 0.4.4 it pins (regenerates the MACE test file)"),
]}

#: mace-torch pins e3nn==0.4.4, which the e3nn 0.6 of sevenn excludes and which does not import under
#: torch >= 2.6: the extra holds mace-torch's other dependencies and e3nn>=0.5.9, and mace-torch itself
#: is installed with --no-deps (install.sh and the load error name that second step).
MACE_REQUIREMENTS = (
    "e3nn>=0.5.9", "numpy", "opt_einsum", "ase", "torch-ema", "prettytable", "matscipy", "h5py",
    "torchmetrics", "python-hostlist", "configargparse", "GitPython", "pyYAML", "tqdm", "lmdb", "orjson",
    "matplotlib", "pandas",
)

FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("chgnet", "chgnet", "chgnet", ("chgnet>=0.3.0", "vesin[torch]>=0.3"), ("chgnet",), "main", "PBE",
           path_option="model_name", form="chgnet:MODEL", install_by_extra=True, batched=True,
           description="CHGNet (packaged checkpoints by name, or a checkpoint file)"),
    Family("sevennet", "sevennet", "sevennet", ("sevenn>=0.10", "vesin[torch]>=0.3"), ("sevenn",), "main",
           "unknown", path_option="model", form="sevennet:PATH", install_by_extra=True, batched=True,
           description="SevenNet (pretrained name or checkpoint file)"),
    Family("orb", "orb", "orb", ("orb-models>=0.4",), ("orb-models",), "main", "unknown",
           path_option="weights", form="orb:PATH", file_option="weights", install_by_extra=True,
           description="ORB (hub name or state_dict file)"),
    Family("mace", "mace", "mace", MACE_REQUIREMENTS, ("mace-torch", "e3nn"), "main", "unknown",
           path_option="path", form="mace:PATH", file_option="path", batched=True, install_by_extra=True,
           description="MACE (model file; files saved under e3nn 0.4.4 are converted)"),
    Family("deepmd", "deepmd", "deepmd", ("deepmd-kit>=3.0",), ("deepmd-kit",), "main", "unknown",
           path_option="path", form="deepmd:PATH", file_option="path", batched=True,
           environment_by_suffix=((".pb", "deepmd-tf"),),
           description="DeePMD-kit (.pth on torch; frozen .pb graphs in the TensorFlow environment)"),
    Family("m3gnet", "m3gnet", "m3gnet", ("matgl>=1.1",), ("matgl", "dgl"), "m3gnet", "PBE",
           path_option="path", form="m3gnet:PATH", batched=True, description="M3GNet (matgl potential directory)"),
    Family("gptff", "gptff", None, (), ("gptff",), "gptff", "PBE", path_option="path", form="gptff:PATH",
           file_option="path", energy_reference="relative",
           description="GPTFF (not on PyPI: install.sh builds it from its source repository)"),
    Family("ase", "generic", None, (), (), "main", "unknown", path_option="factory",
           form="ase:module:callable", installable=False,
           description="any ASE calculator from a factory 'pkg.module:callable' (options.kwargs)"),
]}

#: Forms that name no family: the harness's deliberately flawed test calculators.
TEST_FORMS = ("synthetic:VARIANT",)


def forms() -> list[str]:
    """Every ``FAMILY:ARG`` form a ``--model`` accepts, as help texts write them."""
    return [f.form for f in FAMILIES.values()] + list(TEST_FORMS)


def environment_of(family: str, options: dict | None = None) -> str:
    """The environment key a model of ``family`` with ``options`` runs in."""
    fam = FAMILIES.get(family)
    if fam is None:
        return "main"
    path = str((options or {}).get(fam.path_option, ""))
    for suffix, key in fam.environment_by_suffix:
        if path.endswith(suffix):
            return key
    return fam.environment


def install_target(family: str, options: dict | None = None) -> str:
    """The ``install.sh`` arguments that build what a model of ``family`` needs."""
    key = environment_of(family, options)
    if key != "main":
        return ENVIRONMENTS[key].default_install
    fam = FAMILIES.get(family)
    return fam.name if fam is not None and fam.installable else ENVIRONMENTS["main"].default_install


def install_plan() -> dict[str, list[str]]:
    """The lists ``scripts/install.sh`` works from (shell variables of ``--install-plan``).

    ``TARGETS``: every argument install.sh accepts (families, then environments that are no family's
    home); ``ALL``: what ``all`` means; ``MAIN``: families of the ``.venv``; ``MAIN_EXTRAS``: those of
    them installed by their pyproject extra alone."""
    fams = [f for f in FAMILIES.values() if f.installable]
    homes = {f.environment for f in fams}
    envs = [e for e in ENVIRONMENTS.values() if e.key not in homes and e.key != "main"]
    return {
        "TARGETS": [f.name for f in fams] + [e.default_install for e in envs],
        "ALL": [f.name for f in fams] + [e.default_install for e in envs if e.in_all],
        "MAIN": [f.name for f in fams if f.environment == "main"],
        "MAIN_EXTRAS": [f.name for f in fams if f.environment == "main" and f.install_by_extra],
    }


def markdown_table() -> str:
    """The families as a Markdown table (for the documentation)."""
    rows = ["| family | form | pip extra | environment | constraints | default functional |",
            "|---|---|---|---|---|---|"]
    for f in FAMILIES.values():
        env = ENVIRONMENTS[f.environment]
        rows.append(f"| {f.name} | `{f.form}` | {f'`{f.extra}`' if f.extra else '-'} | `{env.folder}` | "
                    f"`{env.constraints}` | {f.functional} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--install-plan", action="store_true", help="shell variables for scripts/install.sh")
    p.add_argument("--markdown", action="store_true", help="the families as a Markdown table")
    args = p.parse_args(argv)
    if args.install_plan:
        for name, values in install_plan().items():
            print(f'{name}="{" ".join(values)}"')
    elif args.markdown:
        print(markdown_table())
    else:
        p.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
