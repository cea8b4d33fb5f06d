"""SevenNet adapter (7net-l3i5, 7net-0 and 7net-mf-0 ship inside the ``sevenn`` package)."""

from __future__ import annotations

import importlib.util

from pto_checks.models.base import Loaded, ModelSpec, ModelUnavailable, require, sha256_module

#: sevenn's tensor-product accelerators, in order of preference: (SevenNetCalculator flag, module)
ACCELERATORS = (("enable_cueq", "cuequivariance_torch"), ("enable_flash", "flashTP_e3nn"),
                ("enable_oeq", "openequivariance"))


def accelerator(device: str, option: str | None = "auto") -> dict[str, bool]:
    """The SevenNetCalculator flag of the tensor-product accelerator to use: on a GPU, the first
    installed one (``option='auto'``), the one named (``cueq``, ``flash``, ``oeq``), or none."""
    if option in (None, "none") or not str(device).startswith("cuda"):
        return {}
    for flag, module in ACCELERATORS:
        if option not in ("auto", flag.removeprefix("enable_")):
            continue
        if importlib.util.find_spec(module) is not None:
            return {flag: True}
    return {}


def load(spec: ModelSpec, device: str) -> Loaded:
    """Load a SevenNet checkpoint by pretrained name or path (``spec.options['model']``)."""
    require("sevenn", model=spec.name, extra="sevennet")
    from sevenn.calculator import SevenNetCalculator

    model = spec.options.get("model", "7net-l3i5")
    modal = spec.options.get("modal")
    accel = accelerator(device, spec.options.get("accelerator", "auto"))
    try:
        calc = SevenNetCalculator(model=model, device=device, modal=modal, **accel)
    except (ValueError, FileNotFoundError, OSError) as exc:
        raise ModelUnavailable(
            spec.name,
            "weights",
            f"SevenNet checkpoint {model!r} could not be loaded ({exc}). Packaged offline: "
            "7net-l3i5, 7net-0, 7net-mf-0 (modal='PBE'); others download from the internet, "
            "or pass a checkpoint path: --model sevennet:/path/to/checkpoint.pth",
        ) from exc
    return Loaded(calc, sha256_module(calc.model),
                  details={"model": str(model), "modal": modal, "accelerator": next(iter(accel), "none")})
