"""DeePMD-kit adapter: any frozen model (``.pth`` PyTorch backend, ``.pb`` TensorFlow); UniPero is one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the batched engine's types; the TensorFlow environment has no torch
    import torch

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


# ----------------------------------------------------------------------------- batched MD interface
# The batched engine's device-side interface of this family (see pto_checks.models.batched):
# batched_potential(model, numbers, masses, device) -> BatchedPotential.


def batched_available() -> bool:
    """Always: the interface is DeePMD's own evaluation of many frames."""
    return True


def batched_potential(model, numbers, masses, device):
    """DeePMD's ``DeepPot.eval`` with the replicas as frames of one call."""
    return DeePMDBatched(model.calculator, numbers, device)


class DeePMDBatched:
    """DeePMD's own ``DeepPot.eval`` with all replicas as frames of one call (the PyTorch backend
    builds its neighbor list in torch on the model's device; positions travel as a few kB)."""

    def __init__(self, calc: Any, numbers: np.ndarray, device: str | torch.device):
        import torch  # only the batched engine needs it (the TensorFlow environment has no torch)
        from ase.data import chemical_symbols

        self.dp = calc.dp
        self.atype = [calc.type_dict[chemical_symbols[z]] for z in numbers]
        self.device = torch.device(device)
        self.name = "deepmd-frames"

    def __call__(self, positions: torch.Tensor, cells: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        import torch

        b, n, _ = positions.shape
        pos = positions.detach().cpu().numpy().reshape(b, -1)
        cel = cells.detach().cpu().numpy().reshape(b, 9)
        e, f, v = self.dp.eval(coords=pos, cells=cel, atom_types=self.atype)[:3]
        t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float64, device=self.device)  # noqa: E731
        v = t(v).reshape(b, 3, 3)
        vol = torch.abs(torch.linalg.det(cells.double()))
        stress = -0.5 * (v + v.transpose(1, 2)) / vol[:, None, None]  # as deepmd.calculator.DP
        return t(e).reshape(b), t(f).reshape(b, n, 3), stress
