"""The batched engine's model interface: many replicas of one system in one model call.

A :class:`BatchedPotential` maps positions ``[B, N, 3]`` (Angstrom) and cells ``[B, 3, 3]``
(rows are lattice vectors, Angstrom) of ``B`` replicas of the same ``N`` atoms to energies
``[B]`` (eV), forces ``[B, N, 3]`` (eV/A) and stresses ``[B, 3, 3]`` (eV/A^3, ASE's sign:
positive is tensile), all as float64 tensors on the potential's device.

Each family adapter owns its device-side interface: a family whose record says ``batched=True``
(:mod:`pto_checks.models.families`) has an adapter that is a
:class:`~pto_checks.models.adapter.BatchedAdapter` (``batched_available()``,
``batched_potential(model, numbers, masses, device)``).  :func:`batched_potential` dispatches on
``model.spec.family``; a family without one runs through :class:`CalculatorLoop` (its ASE
calculator, one replica after another: correct, not faster).  Neighbor lists:
:func:`pto_checks.neighbors.neighbor_list` (vesin).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pto_checks.models.adapter import BatchedAdapter, BatchedPotential, batched_adapter

__all__ = ["BatchedPotential", "CalculatorLoop", "batched_potential", "has_native_interface"]


class CalculatorLoop:
    """Any ASE calculator, replica by replica (one call per replica, on the CPU)."""


    def __init__(self, calc: Any, numbers: np.ndarray, device: str | torch.device = "cpu"):
        from ase import Atoms

        self.calc = calc
        self.atoms = Atoms(numbers=numbers, pbc=True)
        self.device = torch.device(device)
        self.name = f"ase-loop:{type(calc).__name__}"

    def __call__(self, positions: torch.Tensor, cells: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from ase.stress import voigt_6_to_full_3x3_stress

        es, fs, ss = [], [], []
        pos = positions.detach().cpu().numpy()
        cel = cells.detach().cpu().numpy()
        for b in range(pos.shape[0]):
            atoms = self.atoms.copy()
            atoms.cell = cel[b]
            atoms.positions = pos[b]
            atoms.calc = self.calc
            es.append(atoms.get_potential_energy())
            fs.append(atoms.get_forces())
            ss.append(voigt_6_to_full_3x3_stress(atoms.get_stress()))
        t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float64, device=self.device)  # noqa: E731
        return t(es), t(fs), t(ss)


def _adapter(model: Any) -> BatchedAdapter | None:
    """The family's batched adapter for a LoadedModel (None for a bare ASE calculator)."""
    from pto_checks.models.base import LoadedModel

    return batched_adapter(model.spec.family) if isinstance(model, LoadedModel) else None


def has_native_interface(model: Any) -> bool:
    """Whether ``model``'s family has a usable device-side batched interface here."""
    return _adapter(model) is not None


def batched_potential(model: Any, numbers: np.ndarray, masses: np.ndarray, device: str) -> BatchedPotential:
    """The batched potential for ``model`` (a LoadedModel, or a bare ASE calculator): the family
    adapter's device-side interface where it has one, else the calculator loop."""
    mod = _adapter(model)
    if mod is not None:
        return mod.batched_potential(model, numbers, masses, device)
    return CalculatorLoop(getattr(model, "calculator", model), numbers, device)
