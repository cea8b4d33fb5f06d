"""The interface of a model family's adapter module, ``pto_checks/models/<adapter>.py``.

Every adapter is an :class:`Adapter`: ``load(spec, device)`` returns a :class:`~pto_checks.models.base.
Loaded` (a plain ASE calculator plus the identity of its weights) or raises
:class:`~pto_checks.models.base.ModelUnavailable` naming the fix.  An adapter whose family record says
``batched=True`` (:mod:`pto_checks.models.families`) is also a :class:`BatchedAdapter`: the batched MD
engine's device-side interface (:mod:`pto_checks.models.batched`).  Which adapter a family has, and
whether it is batched, is read from the family record, never probed; ``tests/harness/test_families.py``
checks each module against its record.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch is absent from some environments (deepmd-tf): only for the annotations
    import numpy as np
    import torch

    from pto_checks.models.base import Loaded, ModelSpec


class BatchedPotential(Protocol):
    """Energies, forces and stresses of a batch of replicas: positions ``[B, N, 3]`` and cells
    ``[B, 3, 3]`` (rows are lattice vectors), Angstrom, to energies ``[B]`` (eV), forces ``[B, N, 3]``
    (eV/A) and stresses ``[B, 3, 3]`` (eV/A^3, ASE's sign), float64 on :attr:`device`."""

    name: str
    device: torch.device

    def __call__(self, positions: torch.Tensor, cells: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class Adapter(Protocol):
    """What every family adapter module defines."""

    def load(self, spec: ModelSpec, device: str) -> Loaded:
        """The model of ``spec`` on ``device`` (``cpu``, ``cuda``, ``cuda:N``)."""
        ...


@runtime_checkable
class BatchedAdapter(Adapter, Protocol):
    """An adapter with the batched engine's device-side interface."""

    def batched_available(self) -> bool:
        """Whether the optional packages the interface needs are importable here."""
        ...

    def batched_potential(self, model: Any, numbers: np.ndarray, masses: np.ndarray,
                          device: str) -> BatchedPotential:
        """Energies, forces and stresses of many replicas of ``model`` in one call."""
        ...


def adapter_module(family: str) -> ModuleType:
    """The adapter module of ``family`` (its record's ``adapter``), imported."""
    from pto_checks.models.families import FAMILIES

    return importlib.import_module(f"pto_checks.models.{FAMILIES[family].adapter}")


def batched_adapter(family: str) -> BatchedAdapter | None:
    """The family's batched adapter when its record declares one and it is available here."""
    from pto_checks.models.families import FAMILIES

    fam = FAMILIES.get(family)
    if fam is None or not fam.batched:
        return None
    try:
        module = adapter_module(family)
    except ImportError:
        return None
    return module if module.batched_available() else None  # type: ignore[return-value]
