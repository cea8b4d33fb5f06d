"""Registry of models: names -> :class:`ModelSpec`; :func:`load_model` -> ASE calculator.

Names
-----
``chgnet``            CHGNet 0.3.0 (default; weights ship in the ``chgnet`` package)
``chgnet-0.2.0``, ``chgnet-r2scan``
``sevennet``          SevenNet 7net-l3i5 (the study's version; ships in ``sevenn``)
``sevennet-0``, ``sevennet-mf-0``
``m3gnet``            M3GNet-MP-2021.2.8-PES (matgl directory; see :mod:`.m3gnet`)
``mace``              MACE-MP-0b medium (hub download)
``orb``               orb-v2 (hub download)
``gptff``             GPTFF v2 (GPTFF's own package)

Parametrised forms (not part of ``all``): one per family of :data:`.families.FAMILIES` (``mace:PATH``,
``deepmd:PATH``, ``orb:PATH``, ``ase:module:callable``, ...) and ``synthetic:VARIANT`` (the harness's
deliberately flawed calculators).

More models come from a TOML file (``--model-file``, see :func:`load_model_file`) or from
other packages through the entry-point group ``pto_checks.models``: each entry point names a
callable returning a :class:`ModelSpec` or an iterable of them.
"""

from __future__ import annotations

import importlib.metadata
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pto_checks.models.base import (
    Loaded,
    LoadedModel,
    ModelSpec,
    ModelUnavailable,
    package_version,
)
from pto_checks.models.families import FAMILIES, forms

__all__ = [
    "Loaded",
    "LoadedModel",
    "ModelSpec",
    "ModelUnavailable",
    "available_names",
    "get_spec",
    "load_model",
    "load_model_file",
    "register",
    "resolve_device",
]

ENTRY_POINT_GROUP = "pto_checks.models"


def _lazy(module: str) -> Callable[[ModelSpec, str], Loaded]:
    """Loader that imports ``pto_checks.models.<module>`` only when called."""

    def loader(spec: ModelSpec, device: str) -> Loaded:
        mod = importlib.import_module(f"pto_checks.models.{module}")
        return mod.load(spec, device)

    loader.__name__ = f"load_{module}"
    return loader


def _pretrained(name: str, family: str, version: str, functional: str, weights_source: str,
                **kwargs: Any) -> ModelSpec:
    """A built-in model: its loader and pip extra come from its family's record."""
    fam = FAMILIES[family]
    return ModelSpec(name, family, version, functional, weights_source, _lazy(fam.adapter), extra=fam.extra,
                     **kwargs)


_BUILTIN: list[ModelSpec] = [
    _pretrained("chgnet", "chgnet", "0.3.0", "PBE", "packaged with chgnet (pretrained/0.3.0)",
                energy_reference="mp2020", options={"model_name": "0.3.0"}, description="CHGNet 0.3.0, MPtrj"),
    _pretrained("chgnet-0.2.0", "chgnet", "0.2.0", "PBE", "packaged with chgnet (pretrained/0.2.0)",
                energy_reference="mp2020", options={"model_name": "0.2.0"}, description="CHGNet 0.2.0, MPtrj"),
    _pretrained("chgnet-r2scan", "chgnet", "r2scan", "r2SCAN", "packaged with chgnet (pretrained/r2scan)",
                options={"model_name": "r2scan"}, description="CHGNet transfer-learned to MP r2SCAN"),
    # SevenNet predicts uncorrected MPtrj energies (measured here: MgO -5.98, TiO2 -8.93 eV/atom for
    # l3i5, 7net-0 and 7net-mf-0; MP2020-corrected would be -6.32, -9.40)
    _pretrained("sevennet", "sevennet", "7net-l3i5", "PBE", "packaged with sevenn (SevenNet_l3i5)",
                energy_reference="mp-raw", options={"model": "7net-l3i5"}, description="SevenNet l3i5, MPtrj"),
    _pretrained("sevennet-0", "sevennet", "7net-0", "PBE", "packaged with sevenn (SevenNet_0__11Jul2024)",
                energy_reference="mp-raw", options={"model": "7net-0"}, description="SevenNet-0, MPtrj"),
    _pretrained("sevennet-mf-0", "sevennet", "7net-mf-0", "PBE", "packaged with sevenn (SevenNet_MF_0)",
                energy_reference="mp-raw", options={"model": "7net-mf-0", "modal": "PBE"},
                description="SevenNet multi-fidelity, PBE head"),
    _pretrained("m3gnet", "m3gnet", "MP-2021.2.8-PES", "PBE",
                "matgl directory M3GNet-MP-2021.2.8-PES (models dir or matgl hub)", energy_reference="mp-raw",
                options={"name": "M3GNet-MP-2021.2.8-PES"}, description="M3GNet universal potential, MPF 2021.2.8"),
    # energy scale not verified here (weights cannot be downloaded): reference energies skipped
    _pretrained("mace", "mace", "MACE-MP-0b-medium", "PBE", "MACE-MP hub download (medium-0b)",
                options={"hub": "medium-0b"}, description="MACE-MP-0b medium, MPtrj"),
    _pretrained("orb", "orb", "orb-v2", "PBE", "orb-models hub download (orb-v2-20241011)",
                options={"pretrained": "orb_v2"}, description="ORB v2, MPtrj + Alexandria"),
    # GPTFF is trained on Atomly's PBE database, whose absolute energies are not Materials Project's:
    # its sanity energies are judged on energy differences (bulk moduli; reference_data/sanity.toml)
    _pretrained("gptff", "gptff", "v2", "PBE", "gptff_v2.pth (models dir)",
                energy_reference="relative", description="GPTFF v2, Atomly (PBE)"),
]

_registry: dict[str, ModelSpec] = {s.name: s for s in _BUILTIN}
_entry_points_loaded = False


def register(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add ``spec`` to the registry (error if the name exists, unless ``replace``)."""
    if spec.name in _registry and not replace and _registry[spec.name] is not spec:
        raise ValueError(f"model name {spec.name!r} is already registered")
    _registry[spec.name] = spec
    return spec


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        result = obj() if callable(obj) and not isinstance(obj, ModelSpec) else obj
        specs = [result] if isinstance(result, ModelSpec) else list(result)
        for spec in specs:
            register(spec, replace=True)


def load_model_file(path: str | os.PathLike[str]) -> list[ModelSpec]:
    """Register the models of a TOML file and return their specs.

    A model file is code: a family's loader unpickles the files it names (``torch.load``) and an
    ``ase`` entry's ``factory`` may name any importable callable, which is called.  Use model files
    (and entry points of the group ``pto_checks.models``) you would run as a script.

    Each table ``[models.NAME]`` has ``family`` (a built-in family or ``ase``), ``functional``,
    optionally ``version``, ``energy_reference``, ``description`` and ``options`` (passed to the
    adapter: e.g. ``path`` for mace/deepmd, ``factory`` + ``kwargs`` for ``ase``).  Relative paths
    in ``options.path``/``options.weights`` are resolved against the file's folder.  A malformed
    file raises ``ValueError`` naming the table and the key, before any model is registered.
    """
    from pto_checks.reference import tomllib

    path = Path(path)
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ValueError(f"'models' is {type(models).__name__} {models!r}; it must be a table of [models.NAME] tables")
    for name, entry in models.items():
        _check_entry(name, entry)
    specs = []
    for name, entry in models.items():
        family = entry.get("family")
        if family not in FAMILIES:
            raise ValueError(f"[models.{name}] family = {family!r}: unknown model family; known: "
                             f"{', '.join(FAMILIES)}")
        module = FAMILIES[family].adapter
        options = dict(entry.get("options", {}))
        for key in ("path", "weights"):
            if key in options and not Path(options[key]).is_absolute() and "://" not in str(options[key]):
                options[key] = str((path.parent / options[key]).resolve())
        spec = ModelSpec(
            name=name,
            family=family,
            version=str(entry.get("version", "custom")),
            functional=entry.get("functional", "unknown"),
            weights_source=str(options.get("path") or options.get("weights") or options.get("factory") or path),
            loader=_lazy(module),
            extra=entry.get("extra", FAMILIES[family].extra),
            description=entry.get("description", f"from {path.name}"),
            energy_reference=entry.get("energy_reference"),
            options=options,
            in_all=bool(entry.get("in_all", True)),
        )
        specs.append(register(spec, replace=True))
    return specs


#: the keys of a [models.NAME] table and the type each must have
_ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {
    "family": str, "functional": str, "version": (str, int, float), "energy_reference": str,
    "description": str, "extra": str, "options": dict, "in_all": bool}


def _check_entry(name: str, entry: Any) -> None:
    """Raise ``ValueError`` (one line: the table, the key, what it must be) for a malformed entry."""
    if not name.strip() or any(ord(c) < 32 for c in name):
        raise ValueError(f"[models.{name!r}]: a model name must be non-empty and printable")
    if not isinstance(entry, dict):
        raise ValueError(f"models.{name} is {type(entry).__name__} {entry!r}; it must be a table ([models.{name}])")
    for key, kind in _ENTRY_TYPES.items():
        if key in entry and not isinstance(entry[key], kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ValueError(f"[models.{name}] {key} = {entry[key]!r}: must be a {want}")
    options = entry.get("options", {})
    if "kwargs" in options and not isinstance(options["kwargs"], dict):
        raise ValueError(f"[models.{name}.options] kwargs = {options['kwargs']!r}: must be a table")
    for key in ("path", "weights", "factory"):
        if key in options and not isinstance(options[key], str):
            raise ValueError(f"[models.{name}.options] {key} = {options[key]!r}: must be a string")


def _synthetic_loader(spec: ModelSpec, device: str) -> Loaded:
    from pto_checks.models import synthetic
    from pto_checks.models.base import sha256_json

    calc = synthetic.make(spec.options["variant"])
    ident = {"variant": spec.options["variant"], "code": synthetic.__doc__}
    if hasattr(calc, "identity"):  # parameters of the model (synthetic:ferro)
        ident["parameters"] = calc.identity()
    return Loaded(calc, sha256_json(ident))


def get_spec(name: str) -> ModelSpec:
    """Spec of a registered model or of a parametrised form (``family:ARG``)."""
    _load_entry_points()
    if name in _registry:
        return _registry[name]
    family, sep, arg = name.partition(":")
    if sep and family == "synthetic":
        from pto_checks.models.synthetic import VARIANTS

        if arg not in VARIANTS:
            raise ModelUnavailable(name, "unknown", f"unknown synthetic variant; known: {', '.join(VARIANTS)}")
        return ModelSpec(name, "synthetic", arg, "PBEsol", "built in (elastic network)",
                         _synthetic_loader, options={"variant": arg}, in_all=False,
                         energy_reference="synthetic",
                         description="deliberately flawed test calculator: " + arg)
    if sep and family in FAMILIES:
        fam = FAMILIES[family]
        return ModelSpec(name, family, "custom", fam.functional, arg, _lazy(fam.adapter), extra=fam.extra,
                         options={fam.path_option: arg}, in_all=False, energy_reference=fam.energy_reference)
    known = ", ".join(sorted(_registry))
    raise ModelUnavailable(
        name, "unknown",
        f"no such model. Registered: {known}. Or use one of the forms {', '.join(forms())}, "
        "or register models with --model-file FILE.toml",
    )


def available_names(include_hidden: bool = False) -> list[str]:
    """Registered model names (those with ``in_all`` unless ``include_hidden``)."""
    _load_entry_points()
    return [n for n, s in _registry.items() if include_hidden or s.in_all]


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is an error."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    return device


def load_model(name: str | ModelSpec, device: str = "auto") -> LoadedModel:
    """Load a model by name (or spec) on ``device``; raises :class:`ModelUnavailable` with a fix."""
    spec = get_spec(name) if isinstance(name, str) else name
    dev = resolve_device(device)
    t0 = time.perf_counter()
    loaded = spec.loader(spec, dev)
    dists = FAMILIES[spec.family].dists if spec.family in FAMILIES else ()
    versions = {d: v for d in ["torch", "ase", *dists]
                if (v := package_version(d)) is not None}
    details = dict(loaded.details)
    details["load_seconds"] = round(time.perf_counter() - t0, 3)
    return LoadedModel(spec, loaded.calculator, loaded.fingerprint, dev, loaded.weights_files,
                       details, versions)


def specs_for(names: Iterable[str]) -> list[ModelSpec]:
    """Expand ``all`` and comma lists into specs (unknown names raise)."""
    out: list[ModelSpec] = []
    for raw in names:
        for name in (n.strip() for n in raw.split(",")):
            if not name:
                continue
            if name == "all":
                out.extend(get_spec(n) for n in available_names())
            else:
                out.append(get_spec(name))
    seen, uniq = set(), []
    for s in out:
        if s.name not in seen:
            seen.add(s.name)
            uniq.append(s)
    return uniq
