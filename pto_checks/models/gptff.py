"""GPTFF adapter (GPTFF v2), through GPTFF's own ASE calculator where the package is installed."""

from __future__ import annotations

from pathlib import Path

from pto_checks.models.base import (
    Loaded,
    ModelSpec,
    ModelUnavailable,
    find_model_file,
    require,
    sha256_files,
)


def load(spec: ModelSpec, device: str) -> Loaded:
    """Load GPTFF weights from ``options['path']`` or ``<models dir>/gptff/gptff_v2.pth``."""
    path = spec.options.get("path")
    if path is None:
        found, tried = find_model_file("gptff/gptff_v2.pth")
        if found is None:
            raise ModelUnavailable(
                spec.name, "weights",
                "GPTFF v2 weights not found; looked in " + ", ".join(map(str, tried))
                + ". Fix: --model gptff:/path/to/gptff_v2.pth or set PTO_CHECKS_MODELS_DIR",
            )
        path = found
    if not Path(path).is_file():
        raise ModelUnavailable(spec.name, "weights", f"GPTFF weights not found: {path}")
    require("gptff.model.mpredict", model=spec.name, extra=None,
            hint="GPTFF is not on PyPI: install it from its source repository "
                 "(github.com/atomly-materials-research-lab/GPTFF)")
    from gptff.model.mpredict import ASECalculator

    calc = ASECalculator(str(path), device)
    return Loaded(calc, sha256_files([path]), [str(path)])
