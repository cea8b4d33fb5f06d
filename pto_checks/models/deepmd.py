"""DeePMD-kit adapter: any frozen model (``.pth`` PyTorch backend, ``.pb`` TensorFlow); UniPero is one."""

from __future__ import annotations

from pathlib import Path

from pto_checks.models.base import Loaded, ModelSpec, ModelUnavailable, require, sha256_files


def load(spec: ModelSpec, device: str) -> Loaded:
    """Load the frozen DeePMD model at ``spec.options['path']``."""
    path = spec.options.get("path")
    if not path:
        raise ModelUnavailable(
            spec.name,
            "weights",
            "DeePMD needs a frozen model file: --model deepmd:/path/to/model.pth (or .pb; "
            "UniPero is published as a TensorFlow .pb and needs deepmd-kit built with TensorFlow)",
        )
    if not Path(path).is_file():
        raise ModelUnavailable(spec.name, "weights", f"DeePMD model file not found: {path}. Fix: give the path "
                               "of a frozen model (dp --pt freeze -o model.pth): --model deepmd:/path/model.pth")
    require("deepmd.calculator", model=spec.name, extra="deepmd",
            hint="deepmd-kit must be built against the installed torch (README, 'DeePMD')")
    from deepmd.calculator import DP

    if device == "cpu":
        import os

        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    try:
        calc = DP(model=str(path))
    except Exception as exc:
        raise ModelUnavailable(spec.name, "weights", f"DeePMD could not load {path}: {exc}") from exc
    return Loaded(calc, sha256_files([path]), [str(path)])
