"""Periodic neighbor lists on the positions' device, from vesin (``vesin.torch``).

One function, :func:`neighbor_list`, used by every family's device-side batched interface
(``pto_checks/models/<family>.py``).  vesin is a maintained cell-list implementation (CPU and
CUDA); measured on a CPU, one thread, 625 / 2,560 atoms, cutoff 6 A: the brute-force torch list
this replaced took 854 ms / 16.1 s, vesin a few ms (``scripts/neighbor_bench.py``).
"""

from __future__ import annotations

import torch


def neighbor_list(positions: torch.Tensor, cell: torch.Tensor, cutoff: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Full periodic neighbor list of one system (``positions`` [N, 3], ``cell`` [3, 3] rows are
    lattice vectors, Angstrom).

    Returns ``i``, ``j`` (long), integer ``shifts`` ``[E, 3]`` (long) and ``vectors`` ``[E, 3]``
    (Angstrom) with ``r_j + shifts @ cell - r_i = vector`` and ``|vector| < cutoff`` for the
    *given* (possibly unwrapped) positions; self pairs only across images.
    """
    from vesin.torch import NeighborList

    dt = positions.dtype
    pos = positions.detach().to(torch.float64)
    box = cell.detach().to(torch.float64)
    # vesin wants points inside the box: wrap, then fold the wrapping back into the shifts
    frac = pos @ torch.linalg.inv(box)
    off = torch.floor(frac)
    wrapped = (frac - off) @ box
    i, j, s = NeighborList(cutoff=float(cutoff), full_list=True).compute(wrapped, box, True, "ijS")
    i, j = i.long(), j.long()
    shifts = (s.to(torch.float64) - off[j] + off[i]).round().long()
    vectors = positions[j] + shifts.to(dt) @ cell - positions[i]
    return i, j, shifts, vectors
