"""MACE adapter: MACE-MP-0b medium from the hub, or any MACE model file (e.g. fine-tuned)."""

from __future__ import annotations

from pathlib import Path

from pto_checks.models.base import (
    Loaded,
    ModelSpec,
    ModelUnavailable,
    require,
    sha256_files,
    sha256_module,
)


def load(spec: ModelSpec, device: str) -> Loaded:
    """Load ``spec.options['path']`` (a ``.model`` file) or the hub model ``options['hub']``."""
    require("mace.calculators", model=spec.name, extra="mace")
    from mace.calculators import MACECalculator, mace_mp

    dtype = spec.options.get("default_dtype", "float64")
    path = spec.options.get("path")
    if path:
        if not Path(path).is_file():
            raise ModelUnavailable(spec.name, "weights", f"MACE model file not found: {path}. Fix: "
                                   "--model mace:/path/to/file.model (a model saved by MACE)")
        calc = MACECalculator(model_paths=str(path), device=device, default_dtype=dtype)
        return Loaded(calc, sha256_module(calc.models[0]), [str(path)], {"file_sha256": sha256_files([path])})
    hub = spec.options.get("hub", "medium-0b")
    try:
        calc = mace_mp(model=hub, device=device, default_dtype=dtype)
    except Exception as exc:  # network errors come in many types
        raise ModelUnavailable(
            spec.name,
            "weights",
            f"MACE-MP {hub!r} could not be downloaded ({type(exc).__name__}: {exc}). Fix: download "
            "the .model file on a machine with internet and run --model mace:/path/to/file.model",
        ) from exc
    return Loaded(calc, sha256_module(calc.models[0]), details={"hub": hub})
