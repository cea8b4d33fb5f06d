"""CHGNet adapter (weights 0.3.0, 0.2.0 and r2scan ship inside the ``chgnet`` package)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ase import units

from pto_checks.models.base import Loaded, ModelSpec, ModelUnavailable, require, sha256_module
from pto_checks.neighbors import neighbor_list


def load(spec: ModelSpec, device: str) -> Loaded:
    """Load the packaged CHGNet checkpoint ``spec.options['model_name']`` on ``device``."""
    require("chgnet", model=spec.name, extra="chgnet")
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    model_name = spec.options.get("model_name", "0.3.0")
    try:
        model = CHGNet.load(model_name=model_name, use_device=device, verbose=False)
    except ValueError as exc:
        raise ModelUnavailable(spec.name, "weights", f"{exc}; known: 0.3.0, 0.2.0, r2scan") from exc
    # CHGNetCalculator converts its GPa stress to eV/A^3 by default (stress_weight=1/160.2).
    calc = CHGNetCalculator(model=model, use_device=device, on_isolated_atoms="ignore")
    return Loaded(calc, sha256_module(model), details={"model_name": model_name})


# ----------------------------------------------------------------------------- batched MD interface
# The batched engine's device-side interface of this family (see pto_checks.models.batched):
# batched_potential(model, numbers, masses, device) -> BatchedPotential.


def batched_available() -> bool:
    """Always: beyond the family's package it needs a neighbor list, vesin's or, where vesin-torch
    is absent, the brute-force one (:mod:`pto_checks.neighbors`)."""
    return True


def batched_potential(model, numbers, masses, device):
    """CHGNet on device-built graphs, all replicas in one ``CHGNet.forward`` call."""
    return CHGNetBatched(model.calculator.model, numbers, device)


def chgnet_graph(positions: torch.Tensor, cell: torch.Tensor, numbers: torch.Tensor,
                 atom_cutoff: float, bond_cutoff: float):
    """CHGNet ``CrystalGraph`` of one system built on the device.

    Same content as ``chgnet.graph.CrystalGraphConverter`` (directed edges within ``atom_cutoff``,
    each undirected edge with its two directed edges, and every pair of distinct directed edges
    shorter than ``bond_cutoff`` sharing a centre atom as a bond-graph row
    ``[centre, undirected_1, directed_1, undirected_2, directed_2]``); only the order of edges
    differs, which CHGNet's sums do not see.
    """
    from chgnet.graph.crystalgraph import CrystalGraph

    dtype = torch.float32
    i, j, shifts, vec = neighbor_list(positions, cell, atom_cutoff)
    dev = positions.device
    n = positions.shape[0]
    dist = torch.linalg.norm(vec, dim=1)
    # pair each directed edge (i, j, S) with its reverse (j, i, -S)
    m = int(shifts.abs().max()) + 1 if len(shifts) else 1
    k = 2 * m + 1

    def code(a: torch.Tensor, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return (((a * n + b) * k + s[:, 0] + m) * k + s[:, 1] + m) * k + s[:, 2] + m

    fwd = code(i, j, shifts)
    rev = code(j, i, -shifts)
    canon = torch.minimum(fwd, rev)
    uniq, d2u = torch.unique(canon, return_inverse=True)
    rep = fwd <= rev
    u2d = torch.empty(len(uniq), dtype=torch.long, device=dev)
    u2d[d2u[rep]] = torch.nonzero(rep).flatten()
    # bond graph: pairs of distinct short directed edges with the same centre
    short = torch.nonzero(dist < bond_cutoff).flatten()
    order = torch.argsort(i[short], stable=True)
    short = short[order]
    centre = i[short]
    counts = torch.bincount(centre, minlength=n)
    starts = torch.cumsum(counts, 0) - counts
    per_edge = counts[centre]
    first = torch.repeat_interleave(torch.arange(len(short), device=dev), per_edge)
    offset = torch.arange(int(per_edge.sum()), device=dev) - torch.repeat_interleave(
        torch.cumsum(per_edge, 0) - per_edge, per_edge)
    second = starts[centre[first]] + offset
    keep = first != second
    a, b = short[first[keep]], short[second[keep]]
    bond_graph = torch.stack([i[a], d2u[a], a, d2u[b], b], dim=1)
    inv = torch.linalg.inv(cell)
    return CrystalGraph(
        atomic_number=numbers.to(torch.int32),
        atom_frac_coord=(positions @ inv).to(dtype),
        atom_graph=torch.stack([i, j], dim=1).to(torch.int32),
        neighbor_image=shifts.to(dtype),
        directed2undirected=d2u.to(torch.int32),
        undirected2directed=u2d.to(torch.int32),
        bond_graph=bond_graph.to(torch.int32),
        lattice=cell.to(dtype),
        graph_id=None,
        mp_id=None,
        composition="",
        atom_graph_cutoff=atom_cutoff,
        bond_graph_cutoff=bond_cutoff,
    )


class CHGNetBatched:
    """CHGNet on device-built graphs, all replicas in one ``CHGNet.forward`` call."""

    def __init__(self, model: Any, numbers: np.ndarray, device: str | torch.device):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.model.eval()
        self.numbers = torch.as_tensor(numbers, device=self.device)
        conv = model.graph_converter
        self.atom_cutoff = float(conv.atom_graph_cutoff)
        self.bond_cutoff = float(conv.bond_graph_cutoff)
        self.name = "chgnet-device-graphs"

    def graphs(self, positions: torch.Tensor, cells: torch.Tensor) -> list:
        return [chgnet_graph(positions[b], cells[b], self.numbers, self.atom_cutoff, self.bond_cutoff)
                for b in range(positions.shape[0])]

    def __call__(self, positions: torch.Tensor, cells: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = positions.shape[1]
        pred = self.model(self.graphs(positions, cells), task="efs")
        e = torch.as_tensor(pred["e"], device=self.device).reshape(-1).double() * n
        f = torch.stack([torch.as_tensor(x) for x in pred["f"]]).double()
        s = torch.stack([torch.as_tensor(x) for x in pred["s"]]).double() * units.GPa
        return e.detach(), f.detach(), s.detach()
