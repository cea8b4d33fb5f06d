"""SevenNet adapter (7net-l3i5, 7net-0 and 7net-mf-0 ship inside the ``sevenn`` package)."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch

from pto_checks.models.base import Loaded, ModelSpec, ModelUnavailable, require, sha256_module
from pto_checks.neighbors import neighbor_list

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


# ----------------------------------------------------------------------------- batched MD interface
# The batched engine's device-side interface of this family (see pto_checks.models.batched):
# batched_potential(model, numbers, masses, device) -> BatchedPotential.


def batched_available() -> bool:
    """Always: beyond the family's package it needs a neighbor list, vesin's or, where vesin-torch
    is absent, the brute-force one (:mod:`pto_checks.neighbors`)."""
    return True


def batched_potential(model, numbers, masses, device):
    """SevenNet's own model on a torch_geometric batch of device-built edges."""
    return SevenNetBatched(model.calculator, numbers, device)


class SevenNetBatched:
    """SevenNet on device-built edge lists, all replicas as one torch_geometric batch.

    Written here because TorchSim 0.3.0's SevenNet interface imports a name that sevenn 0.13
    removed (``sevenn.calculator.torch_script_type``).  Same inputs as ``SevenNetCalculator``
    (edge vectors, no shifts: SevenNet takes forces and virial from edge-vector gradients).
    """

    def __init__(self, calc: Any, numbers: np.ndarray, device: str | torch.device):
        self.device = torch.device(device)
        self.model = calc.model.to(self.device)
        self.cutoff = float(calc.cutoff)
        self.modal = getattr(calc, "modal", None)
        self.numbers = torch.as_tensor(numbers, dtype=torch.int64, device=self.device)
        self.name = "sevennet-device-graphs"

    def __call__(self, positions: torch.Tensor, cells: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        import sevenn._keys as key
        from sevenn.atom_graph_data import AtomGraphData
        from torch_geometric.data import Batch

        b, n, _ = positions.shape
        data = []
        for k in range(b):
            i, j, _, vec = neighbor_list(positions[k], cells[k], self.cutoff)
            d = {
                key.NODE_FEATURE: self.numbers, key.ATOMIC_NUMBERS: self.numbers,
                key.POS: positions[k].float(), key.EDGE_IDX: torch.stack([i, j]),
                key.EDGE_VEC: vec.float(), key.CELL_VOLUME: torch.abs(torch.linalg.det(cells[k])).float(),
                key.NUM_ATOMS: torch.tensor(n, device=self.device), key.INFO: {},
            }
            if self.modal:
                d[key.DATA_MODALITY] = self.modal
            data.append(AtomGraphData(**d))
        batch = Batch.from_data_list(data)
        self.model.set_is_batch_data(True)
        try:
            out = self.model(batch)
        finally:
            self.model.set_is_batch_data(False)
        e = out[key.PRED_TOTAL_ENERGY].detach().double().reshape(b)
        f = out[key.PRED_FORCE].detach().double().reshape(b, n, 3)
        v = -out[key.PRED_STRESS].detach().double().reshape(b, 6)  # xx yy zz xy yz zx, ASE sign
        s = torch.stack([torch.stack([v[:, 0], v[:, 3], v[:, 5]], -1),
                         torch.stack([v[:, 3], v[:, 1], v[:, 4]], -1),
                         torch.stack([v[:, 5], v[:, 4], v[:, 2]], -1)], 1)
        return e, f, s
