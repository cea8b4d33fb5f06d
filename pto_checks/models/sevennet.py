"""SevenNet adapter (7net-l3i5, 7net-0 and 7net-mf-0 ship inside the ``sevenn`` package)."""

from __future__ import annotations

from pto_checks.models.base import Loaded, ModelSpec, ModelUnavailable, require, sha256_module


def load(spec: ModelSpec, device: str) -> Loaded:
    """Load a SevenNet checkpoint by pretrained name or path (``spec.options['model']``)."""
    require("sevenn", model=spec.name, extra="sevennet")
    from sevenn.calculator import SevenNetCalculator

    model = spec.options.get("model", "7net-l3i5")
    modal = spec.options.get("modal")
    try:
        calc = SevenNetCalculator(model=model, device=device, modal=modal)
    except (ValueError, FileNotFoundError, OSError) as exc:
        raise ModelUnavailable(
            spec.name,
            "weights",
            f"SevenNet checkpoint {model!r} could not be loaded ({exc}). Packaged offline: "
            "7net-l3i5, 7net-0, 7net-mf-0 (modal='PBE'); others download from the internet, "
            "or pass a checkpoint path: --model sevennet:/path/to/checkpoint.pth",
        ) from exc
    return Loaded(calc, sha256_module(calc.model), details={"model": str(model), "modal": modal})
