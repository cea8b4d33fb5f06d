"""ORB adapter: orb-v2 (the study's version) or any ORB architecture with a local state_dict."""

from __future__ import annotations

from pathlib import Path

from pto_checks.models.base import Loaded, ModelSpec, ModelUnavailable, require, sha256_module


def load(spec: ModelSpec, device: str) -> Loaded:
    """Build ``options['architecture']`` (or the ``options['pretrained']`` loader, default orb_v2).

    ``options['weights']`` is a local state_dict file or URL; ``architecture_kwargs`` and
    ``system_config`` ({radius, max_num_neighbors}) configure a custom architecture.
    """
    require("orb_models.forcefield.pretrained", model=spec.name, extra="orb")
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.atomic_system import SystemConfig
    from orb_models.forcefield.calculator import ORBCalculator

    opts = dict(spec.options)
    weights = opts.get("weights")
    precision = opts.get("precision", "float32-high")
    if weights and "://" not in str(weights) and not Path(weights).is_file():
        raise ModelUnavailable(spec.name, "weights", f"ORB weights file not found: {weights}")
    try:
        if "architecture" in opts:
            build = getattr(pretrained, opts["architecture"])
            sc = opts.get("system_config")
            model = build(
                device="cpu",
                system_config=SystemConfig(**sc) if sc else None,
                **opts.get("architecture_kwargs", {}),
            )
            if not weights:
                raise ModelUnavailable(spec.name, "weights", "a custom ORB architecture needs 'weights'")
            model = pretrained.load_model(model, str(weights), device=device, precision=precision,
                                          compile=False)
        else:
            loader = getattr(pretrained, opts.get("pretrained", "orb_v2"))
            kwargs = {"weights_path": str(weights)} if weights else {}
            model = loader(device=device, precision=precision, compile=False, **kwargs)
    except ModelUnavailable:
        raise
    except Exception as exc:
        raise ModelUnavailable(
            spec.name,
            "weights",
            f"ORB weights could not be loaded ({type(exc).__name__}: {exc}). Fix: download the "
            "checkpoint elsewhere and pass it: --model orb:/path/to/orb-v2-20241011.ckpt",
        ) from exc
    calc = ORBCalculator(model, device=device)
    return Loaded(calc, sha256_module(model), [str(weights)] if weights else [])
