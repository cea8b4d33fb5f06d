"""CHGNet adapter (weights 0.3.0, 0.2.0 and r2scan ship inside the ``chgnet`` package)."""

from __future__ import annotations

from pto_checks.models.base import Loaded, ModelSpec, ModelUnavailable, require, sha256_module


def load(spec: ModelSpec, device: str) -> Loaded:
    """Load the packaged CHGNet checkpoint ``spec.options['model_name']`` on ``device``."""
    require("chgnet", model=spec.name, extra="chgnet")
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    model_name = spec.options.get("model_name", "0.3.0")
    try:
        model = CHGNet.load(model_name=model_name, use_device=device, verbose=False)
    except ValueError as exc:
        raise ModelUnavailable(spec.name, "weights", f"{exc}; known: 0.3.0, 0.2.0, r2scan") from exc
    # CHGNetCalculator converts its GPa stress to eV/A^3 by default (stress_weight=1/160.2).
    calc = CHGNetCalculator(model=model, use_device=device, on_isolated_atoms="ignore")
    return Loaded(calc, sha256_module(model), details={"model_name": model_name})
