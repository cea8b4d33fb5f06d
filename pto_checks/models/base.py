"""Model specs, loaded models, errors and weight fingerprints (shared by every adapter)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator


class ModelUnavailable(RuntimeError):
    """A model cannot be loaded here.  The message says why and how to fix it.

    ``kind`` is one of ``"unknown"`` (no such name), ``"package"`` (its Python package is
    missing), ``"weights"`` (its weights were not found or cannot be fetched), ``"broken"``
    (it loads but is known to give wrong results in this environment).
    """

    def __init__(self, name: str, kind: str, message: str):
        super().__init__(f"model {name!r}: {message}")
        self.name = name
        self.kind = kind


@dataclass(frozen=True)
class ModelSpec:
    """What the harness knows about a model before loading it.

    ``functional`` is the DFT level of theory its training data came from ("PBE", "PBEsol",
    "r2SCAN", ...): checks compare with the reference of the same functional where one exists.
    ``energy_reference`` names the energy scale the model was trained to reproduce
    ("mp2020" = Materials Project GGA/GGA+U with MP2020 corrections, "mp-raw" = uncorrected MP
    GGA/GGA+U); ``None`` where there is no public absolute scale (then the sanity energy check
    is skipped).
    """

    name: str
    family: str
    version: str
    functional: str
    weights_source: str
    loader: Callable[[ModelSpec, str], Loaded] = field(repr=False, compare=False)
    extra: str | None = None
    description: str = ""
    energy_reference: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    in_all: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (no loader)."""
        d = asdict(self)
        d.pop("loader")
        d["options"] = {k: _jsonable(v) for k, v in dict(self.options).items()}
        return d


@dataclass
class Loaded:
    """What an adapter hands back: a plain ASE calculator plus identity of the weights."""

    calculator: Calculator
    fingerprint: str
    weights_files: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedModel:
    """A model ready for simulation: its spec, ASE calculator, device and weights fingerprint."""

    spec: ModelSpec
    calculator: Calculator
    fingerprint: str
    device: str
    weights_files: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    package_versions: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def identity(self) -> dict[str, Any]:
        """Everything that identifies this model's results (used in cache keys and results)."""
        return {
            "name": self.spec.name,
            "family": self.spec.family,
            "version": self.spec.version,
            "fingerprint": self.fingerprint,
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.spec.to_dict()
        d.update(
            fingerprint=self.fingerprint,
            device=self.device,
            weights_files=self.weights_files,
            details={k: _jsonable(v) for k, v in self.details.items()},
            package_versions=self.package_versions,
        )
        return d


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return repr(v)


#: how to install an extra whose package pins what this stack cannot run: mace-torch pins e3nn==0.4.4,
#: which does not import under torch >= 2.6 (its import torch.load()s a pickle); the extra holds
#: mace-torch's other dependencies and e3nn >= 0.5.9, mace-torch itself goes in without its pin
INSTALL_FIX = {
    "mace": "pip install 'pto-checks[mace]' && pip install --no-deps 'mace-torch==0.3.16' (mace-torch's own "
            "pin, e3nn==0.4.4, does not import under torch >= 2.6; in a checkout: bash scripts/install.sh mace)",
}


def require(module: str, *, model: str, extra: str | None, hint: str = "") -> Any:
    """Import ``module`` or raise :class:`ModelUnavailable` naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, broken binary deps, e3nn 0.4.4's UnpicklingError under new torch
        fix = INSTALL_FIX.get(extra or "") or (
            f"pip install 'pto-checks[{extra}]' (in a checkout: bash scripts/install.sh {extra}, "
            "which also handles the deepmd build)" if extra else "install it")
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        msg = f"Python package {module!r} cannot be imported ({type(exc).__name__}: {first}). Fix: {fix}"
        if hint:
            msg += f"; {hint}"
        raise ModelUnavailable(model, "package", msg) from exc


def package_version(dist: str) -> str | None:
    """Installed version of distribution ``dist`` or ``None``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of one file's bytes, as a hex string."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """SHA-256 over the bytes of ``paths`` (sorted, directories walked), as a hex string."""
    h = hashlib.sha256()
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
    for f in sorted(files):
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def sha256_module(module: Any) -> str:
    """SHA-256 over a torch module's ``state_dict`` (names, dtypes, shapes, bytes).

    This fingerprints the weights actually loaded, whatever file they came from.
    """
    import torch

    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        if not isinstance(tensor, torch.Tensor):
            h.update(f"{key}={tensor!r}".encode())
            continue
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{key}:{t.dtype}:{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """SHA-256 of a canonical JSON dump of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=repr).encode()).hexdigest()


def shared_dirs(folder: str, env_var: str) -> list[Path]:
    """Directories searched for shared files, in order: ``$env_var`` (a path list), then
    ``../shared/<folder>`` seen from the current directory and from this source checkout."""
    dirs: list[Path] = []
    env = os.environ.get(env_var)
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    dirs.append(Path.cwd().parent / "shared" / folder)
    dirs.append(Path(__file__).resolve().parents[3] / "shared" / folder)
    return list(dict.fromkeys(dirs))


def shared_models_dirs() -> list[Path]:
    """Directories searched for model files: ``$PTO_CHECKS_MODELS_DIR``, then ``../shared/models``."""
    return shared_dirs("models", "PTO_CHECKS_MODELS_DIR")


def find_model_file(relative: str) -> tuple[Path | None, list[Path]]:
    """Look for ``relative`` under :func:`shared_models_dirs`; return (found or None, tried)."""
    tried = [d / relative for d in shared_models_dirs()]
    for p in tried:
        if p.exists():
            return p, tried
    return None, tried
