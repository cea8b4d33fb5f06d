"""Periodic neighbor lists on the positions' device, from vesin (``vesin.torch``).

One function, :func:`neighbor_list`, used by every family's device-side batched interface
(``pto_checks/models/<family>.py``).  vesin is a maintained cell-list implementation (CPU and
CUDA); measured on a CPU, one thread, 625 / 2,560 atoms, cutoff 6 A: the brute-force torch list
this replaced took 854 ms / 16.1 s (``scripts/neighbor_bench.py``).

``vesin[torch]`` (extras ``batched``, ``chgnet``, ``sevennet``) computes on the tensors' device.
Where vesin-torch has no build for the installed torch (the M3GNet DGL environment, torch 2.2.1:
pip resolves vesin 0.1 without the torch extra, and vesin 0.6's numpy version imports torch.uint64,
absent from torch 2.2), the brute-force list below is used (same pairs, slower).
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
    dt = positions.dtype
    pos = positions.detach().to(torch.float64)
    box = cell.detach().to(torch.float64)
    # vesin wants points inside the box: wrap, then fold the wrapping back into the shifts
    frac = pos @ torch.linalg.inv(box)
    off = torch.floor(frac)
    wrapped = (frac - off) @ box
    i, j, s = _compute(wrapped, box, float(cutoff))
    shifts = (s.to(torch.float64) - off[j] + off[i]).round().long()
    vectors = positions[j] + shifts.to(dt) @ cell - positions[i]
    return i, j, shifts, vectors


def _compute(points: torch.Tensor, box: torch.Tensor, cutoff: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Full list (i, j, integer shifts S) of points inside ``box``, long tensors on their device."""
    try:
        from vesin.torch import NeighborList
    except Exception:  # no vesin-torch build for this torch (e.g. the M3GNet DGL environment)
        return _brute_force(points, box, cutoff)
    i, j, s = NeighborList(cutoff=cutoff, full_list=True).compute(points, box, True, "ijS")
    return i.long(), j.long(), s.long()


def _brute_force(wrapped: torch.Tensor, cell: torch.Tensor, cutoff: float, chunk: int = 256
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fallback where vesin-torch cannot be installed: every periodic image that can reach
    ``cutoff``, chunked over centre atoms (O(N^2) per chunk; 854 ms at 625 atoms on a CPU)."""
    import math

    dev, dt = wrapped.device, wrapped.dtype
    n = wrapped.shape[0]
    vol = torch.abs(torch.linalg.det(cell))
    widths = [float(vol / torch.linalg.norm(torch.linalg.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])))
              for k in range(3)]
    rng = [torch.arange(-math.ceil(cutoff / w), math.ceil(cutoff / w) + 1, device=dev) for w in widths]
    images = torch.cartesian_prod(*rng).to(dt)
    zero_img = int(((images == 0).all(dim=1)).nonzero()[0, 0])
    targets = wrapped[None, :, :] + (images @ cell)[:, None, :]
    out_i, out_j, out_s = [], [], []
    for start in range(0, n, chunk):
        d = targets[None] - wrapped[start:start + chunk, None, None, :]
        mask = (d * d).sum(-1) < cutoff * cutoff
        c_idx = torch.arange(start, min(start + chunk, n), device=dev)
        mask[c_idx - start, zero_img, c_idx] = False  # no self pair in the home cell
        ci, mi, jj = mask.nonzero(as_tuple=True)
        out_i.append(ci + start)
        out_j.append(jj)
        out_s.append(images[mi])
    return torch.cat(out_i), torch.cat(out_j), torch.cat(out_s).long()
