"""M3GNet adapter (matgl).  The study's M3GNet-MP-2021.2.8-PES needs matgl's DGL backend.

The published ``M3GNet-MP-2021.2.8-PES`` directory was trained and saved with matgl < 2 (DGL).
matgl >= 2 (PyTorch Geometric) loads those files without complaint but gives wrong energies for
oxides (measured here with matgl 4.1.2: MgO -1.99 and TiO2 rutile +0.23 eV/atom instead of the
Materials Project -5.96 and -8.94, while elemental Si, Cu, Pb agree to 0.01 eV/atom).  With
matgl 1.1.3 + dgl 2.1.0 + torch 2.2.1 the same files give MgO -5.956 and TiO2 -8.937 eV/atom, the
uncorrected MP values.  So this adapter
refuses that pairing unless ``options['allow_pyg'] = true``; install the DGL stack in its own
environment (README, "M3GNet") to run the model correctly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import units

from pto_checks.models.base import (
    Loaded,
    ModelSpec,
    ModelUnavailable,
    find_model_file,
    package_version,
    require,
    sha256_files,
    sha256_module,
)
from pto_checks.neighbors import neighbor_list

DGL_ENV_FIX = (
    "run M3GNet in its own environment with matgl's DGL backend: "
    "pip install 'torch==2.2.1' 'dgl==2.1.0' 'matgl==1.1.3' 'ase==3.23.0' 'numpy<2' 'pandas<2.3' "
    "'scipy<1.15' 'pymatgen<2025' -e . (README, 'M3GNet')"
)


def _matgl_major() -> int:
    v = package_version("matgl") or "0"
    return int(v.split(".")[0])


def load(spec: ModelSpec, device: str) -> Loaded:
    """Load a matgl Potential directory (``options['path']`` or the models dir / hub by name)."""
    require("matgl", model=spec.name, extra="m3gnet", hint=DGL_ENV_FIX)
    name = spec.options.get("name", "M3GNet-MP-2021.2.8-PES")
    path = spec.options.get("path")
    if path is None:
        found, tried = find_model_file(name)
        path = found
        where = ", ".join(map(str, tried))
    else:
        where = str(path)
        if not Path(path).exists():
            raise ModelUnavailable(spec.name, "weights", f"matgl model directory not found: {path}")
    if _matgl_major() >= 2 and not spec.options.get("allow_pyg", False) and name.startswith("M3GNet-MP-2021"):
        raise ModelUnavailable(
            spec.name,
            "broken",
            f"matgl {package_version('matgl')} (PyG backend) loads the DGL-era {name} weights but gives "
            "wrong oxide energies (measured: MgO -1.99, TiO2 +0.23 eV/atom instead of -5.96, -8.94). "
            f"Fix: {DGL_ENV_FIX}",
        )
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # fail fast instead of 27 s of retries
    import matgl
    from matgl.ext.ase import PESCalculator

    try:
        potential = matgl.load_model(str(path) if path else name)
    except Exception as exc:
        raise ModelUnavailable(
            spec.name, "weights",
            f"matgl could not load {name!r} ({type(exc).__name__}: {exc}); looked in {where}. "
            "Fix: --model m3gnet:/path/to/M3GNet-MP-2021.2.8-PES or set PTO_CHECKS_MODELS_DIR",
        ) from exc
    import inspect

    import ase.units

    # matgl >= 1.2 takes stress_unit; older PESCalculators silently swallow it in **kwargs and
    # return GPa, so choose by signature (the sanity check test_stress_in_ase_units caught this).
    if "stress_unit" in inspect.signature(PESCalculator.__init__).parameters:
        calc = PESCalculator(potential, stress_unit="eV/A3")
    else:
        calc = PESCalculator(potential, stress_weight=ase.units.GPa)  # GPa -> eV/A^3
    potential.to(device)
    files = [str(path)] if path else []
    fp = sha256_files([path]) if path else sha256_module(potential)
    return Loaded(calc, fp, files, {"matgl": package_version("matgl")})


# ----------------------------------------------------------------------------- batched MD interface
# The batched engine's device-side interface of this family (see pto_checks.models.batched):
# batched_potential(model, numbers, masses, device) -> BatchedPotential.


def batched_available() -> bool:
    """The device-side interface needs the DGL-era matgl (``dgl`` importable)."""
    import importlib.util

    return importlib.util.find_spec("dgl") is not None


def batched_potential(model, numbers, masses, device):
    """matgl's DGL-era ``Potential`` on one batched DGL graph of device-built edges."""
    return M3GNetBatched(model.calculator, numbers, device)


class M3GNetBatched:
    """matgl's ``Potential`` on one batched DGL graph of device-built edges (the DGL-era matgl
    that the study's M3GNet weights need; ``Potential`` takes batched graphs natively)."""

    def __init__(self, calc: Any, numbers: np.ndarray, device: str | torch.device):
        import dgl  # noqa: F401  (the DGL backend; matgl >= 2 has another API: calculator loop)
        from ase.data import chemical_symbols

        self.device = torch.device(device)
        self.potential = calc.potential.to(self.device)
        self.cutoff = float(calc.cutoff)
        types = list(calc.element_types)
        self.node_type = torch.tensor([types.index(chemical_symbols[z]) for z in numbers], device=self.device)
        self.state_attr = getattr(calc, "state_attr", None)
        self.stress_weight = float(getattr(calc, "stress_weight", 1.0 * units.GPa))
        self.name = "m3gnet-device-graphs"

    def __call__(self, positions: torch.Tensor, cells: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        import dgl

        b, n, _ = positions.shape
        graphs = []
        for k in range(b):
            i, j, shifts, _ = neighbor_list(positions[k], cells[k], self.cutoff)
            g = dgl.graph((i, j), num_nodes=n, device=self.device)
            g.edata["pbc_offset"] = shifts.float()
            g.ndata["node_type"] = self.node_type
            g.ndata["frac_coords"] = (positions[k] @ torch.linalg.inv(cells[k])).float()
            graphs.append(g)
        state = self.state_attr
        if state is None:
            state = torch.zeros((b, 2), device=self.device)
        e, f, s = self.potential(dgl.batch(graphs), cells.float(), state)[:3]
        return (e.detach().double().reshape(b), f.detach().double().reshape(b, n, 3),
                s.detach().double().reshape(b, 3, 3) * self.stress_weight)
