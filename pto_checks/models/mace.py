"""MACE adapter: MACE-MP-0b medium from the hub, or any MACE model file (e.g. fine-tuned).

A file pickled under another e3nn version (every file saved under mace-torch's pinned e3nn 0.4.4)
is rebuilt once under the installed e3nn (:mod:`.mace_convert`); its fingerprint stays the SHA-256
of the user's file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

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
        try:
            calc = MACECalculator(model_paths=str(path), device=device, default_dtype=dtype)
        except Exception as exc:
            module, details = _converted(spec, path, exc)
            calc = MACECalculator(models=module, device=device, default_dtype=dtype)
            return Loaded(calc, details["file_sha256"], [str(path)], details)
        return Loaded(calc, sha256_module(calc.models[0]), [str(path)], {"file_sha256": sha256_files([path])})
    hub = spec.options.get("hub", "medium-0b")
    if Path(hub).is_file():  # the hub model's file, downloaded elsewhere: mace_mp(model=PATH)
        try:
            calc = mace_mp(model=hub, device=device, default_dtype=dtype)
        except Exception as exc:
            module, details = _converted(spec, hub, exc)
            calc = MACECalculator(models=module, device=device, default_dtype=dtype)
            return Loaded(calc, details["file_sha256"], [str(hub)], {"hub": hub, **details})
        return Loaded(calc, sha256_files([hub]), [str(hub)], {"hub": hub})
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


# ----------------------------------------------------------------------------- batched MD interface
# The batched engine's device-side interface of this family (see pto_checks.models.batched):
# batched_potential(model, numbers, masses, device) -> BatchedPotential.


def batched_available() -> bool:
    """MACE's device-side interface is TorchSim's ``MaceModel`` (``pip install -e ".[batched]"``)."""
    import importlib.util

    return importlib.util.find_spec("torch_sim") is not None


def batched_potential(model, numbers, masses, device):
    """TorchSim's ``MaceModel`` fed our device neighbor list (TorchSim 0.3.0's runs on the CPU)."""
    import torch
    from torch_sim.models.mace import MaceModel

    mace = model.calculator.models[0]
    dtype = next(mace.parameters()).dtype
    ts_model = MaceModel(model=mace, device=torch.device(device), dtype=dtype, neighbor_list_fn=_ts_neighbor_list)
    return TorchSimPotential(ts_model, numbers, masses, "torchsim-mace")


class TorchSimPotential:
    """A TorchSim ``ModelInterface`` (positions concatenated over replicas, one call)."""

    def __init__(self, ts_model: Any, numbers: np.ndarray, masses: np.ndarray, name: str):
        self.model = ts_model
        self.device = torch.device(ts_model.device)
        self.dtype = ts_model.dtype
        self.numbers = torch.as_tensor(numbers, device=self.device)
        self.masses = torch.as_tensor(masses, device=self.device, dtype=self.dtype)
        self.name = name

    def __call__(self, positions: torch.Tensor, cells: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        import torch_sim as ts

        b, n, _ = positions.shape
        state = ts.SimState(
            positions=positions.reshape(-1, 3).to(self.dtype),
            masses=self.masses.repeat(b),
            cell=cells.transpose(1, 2).to(self.dtype),  # TorchSim stores column vectors
            pbc=True,
            atomic_numbers=self.numbers.repeat(b),
            system_idx=torch.arange(b, device=self.device).repeat_interleave(n),
        )
        out = self.model(state)
        return (out["energy"].double().reshape(b), out["forces"].double().reshape(b, n, 3),
                out["stress"].double().reshape(b, 3, 3))


def _ts_neighbor_list(positions, cell, pbc, cutoff):
    """Our device neighbor list with TorchSim's ``neighbor_list_fn`` signature (row-vector cell)."""
    import torch

    from pto_checks.neighbors import neighbor_list

    i, j, shifts, _ = neighbor_list(positions, cell, float(cutoff))
    return torch.stack([i, j]), shifts.to(positions.dtype)
def _converted(spec: ModelSpec, path: str | Path, exc: Exception) -> tuple[Any, dict]:
    """The module of the file rebuilt under the installed e3nn (its weights cached, verified, loaded
    with ``weights_only=True``), or the load error if it is another one."""
    from pto_checks.models import mace_convert

    if not mace_convert.is_e3nn_mismatch(exc):
        raise ModelUnavailable(spec.name, "weights",
                               f"MACE could not load {path}: {type(exc).__name__}: {exc}") from exc
    import e3nn

    sha = mace_convert.file_sha256(path)
    try:
        module, out = mace_convert.load_converted(path, sha)
    except Exception as conv_exc:
        raise ModelUnavailable(
            spec.name, "weights",
            f"{path} was saved under another e3nn version than the installed {e3nn.__version__} "
            f"({type(exc).__name__}: {exc}) and could not be converted ({type(conv_exc).__name__}: {conv_exc}). "
            "Fix: run it in mace-torch's own environment: bash scripts/install.sh mace-legacy",
        ) from conv_exc
    return module, {"file_sha256": sha, "converted_for_e3nn": e3nn.__version__, "converted_file": str(out),
                 "load_error_before_conversion": f"{type(exc).__name__}: {exc}"[:200]}
