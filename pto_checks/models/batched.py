"""Batched, device-resident potentials: many replicas of one system in one model call.

A :class:`BatchedPotential` maps positions ``[B, N, 3]`` (Angstrom) and cells ``[B, 3, 3]``
(rows are lattice vectors, Angstrom) of ``B`` replicas of the same ``N`` atoms to energies
``[B]`` (eV), forces ``[B, N, 3]`` (eV/A) and stresses ``[B, 3, 3]`` (eV/A^3, ASE's sign:
positive is tensile), all as float64 tensors on the potential's device.

Implementations:

* :class:`CHGNetBatched`: CHGNet's own ``CHGNet.forward`` on crystal graphs built on the device
  (:func:`chgnet_graph`: neighbor list, undirected-edge pairing and the three-body bond graph
  in torch, no pymatgen and no CPU round trip).
* :class:`SevenNetBatched`: SevenNet's own model on a torch_geometric batch of device-built edges.
* :class:`DeePMDBatched`: DeePMD's ``DeepPot.eval`` with the replicas as frames of one call.
* :class:`M3GNetBatched`: matgl's (DGL-era) ``Potential`` on one batched DGL graph.
* :class:`TorchSimPotential`: a TorchSim ``ModelInterface`` (MACE), fed our device neighbor list
  (TorchSim 0.3.0's default one runs on the CPU).
* :class:`CalculatorLoop`: any ASE calculator, one replica after another (CPU fallback; exact
  same forces as the ASE engine, used to test the batched integrators against ASE's).

:func:`batched_potential` picks the native one for a loaded model, or the loop.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch

#: CHGNet returns stress in GPa; 1 eV/A^3 = 160.21766208 GPa.
EV_A3_IN_GPA = 160.21766208


class BatchedPotential(Protocol):
    """Energies, forces and stresses of a batch of replicas (see module docstring for units)."""

    name: str
    device: torch.device
    native: bool  #: True when the whole batch is one device-side model call

    def __call__(self, positions: torch.Tensor, cells: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


# ----------------------------------------------------------------------------- neighbor list


def neighbor_list(positions: torch.Tensor, cell: torch.Tensor, cutoff: float, chunk: int = 256
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Full periodic neighbor list of one system, on the positions' device.

    Returns ``i``, ``j`` (long), integer ``shifts`` ``[E, 3]`` (long) and vectors ``[E, 3]`` with
    ``r_j + shifts @ cell - r_i = vector`` and ``|vector| < cutoff`` for the *given* (possibly
    unwrapped) positions; self pairs only across images.  Brute force over the periodic images
    that can reach ``cutoff``, chunked over centre atoms (O(N^2) memory per chunk: fine on a GPU
    up to ~10^4 atoms, and for the small cells used on a CPU).
    """
    dev, dt = positions.device, positions.dtype
    n = positions.shape[0]
    inv = torch.linalg.inv(cell)
    frac = positions @ inv
    off = torch.floor(frac)
    wrapped = (frac - off) @ cell
    # perpendicular widths -> how many images each direction needs
    vol = torch.abs(torch.linalg.det(cell))
    widths = torch.stack([vol / torch.linalg.norm(torch.linalg.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
                          for k in range(3)])
    nmax = [int(math.ceil(cutoff / float(w))) for w in widths]
    rng = [torch.arange(-m, m + 1, device=dev) for m in nmax]
    images = torch.cartesian_prod(*rng).to(dt)  # [M, 3]
    img_vec = images @ cell  # [M, 3]
    zero_img = int(((images == 0).all(dim=1)).nonzero()[0, 0])
    out_i, out_j, out_s = [], [], []
    targets = wrapped[None, :, :] + img_vec[:, None, :]  # [M, N, 3]
    for start in range(0, n, chunk):
        centres = wrapped[start:start + chunk]  # [C, 3]
        d = targets[None, :, :, :] - centres[:, None, None, :]  # [C, M, N, 3]
        r2 = (d * d).sum(-1)
        mask = r2 < cutoff * cutoff
        c_idx = torch.arange(start, min(start + chunk, n), device=dev)
        mask[c_idx - start, zero_img, c_idx] = False  # no self pair in the home cell
        ci, mi, jj = mask.nonzero(as_tuple=True)
        out_i.append(ci + start)
        out_j.append(jj)
        out_s.append(images[mi])
    i = torch.cat(out_i)
    j = torch.cat(out_j)
    s_wrapped = torch.cat(out_s)
    # back to the given positions: r_j - off_j@h + S@h - (r_i - off_i@h) = r_j - r_i + (S - off_j + off_i)@h
    shifts = (s_wrapped - off[j] + off[i]).round().long()
    vectors = positions[j] + shifts.to(dt) @ cell - positions[i]
    return i, j, shifts, vectors


# ----------------------------------------------------------------------------- CHGNet


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

    native = True

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
        s = torch.stack([torch.as_tensor(x) for x in pred["s"]]).double() / EV_A3_IN_GPA
        return e.detach(), f.detach(), s.detach()


# ----------------------------------------------------------------------------- SevenNet


class SevenNetBatched:
    """SevenNet on device-built edge lists, all replicas as one torch_geometric batch.

    Written here because TorchSim 0.3.0's SevenNet interface imports a name that sevenn 0.13
    removed (``sevenn.calculator.torch_script_type``).  Same inputs as ``SevenNetCalculator``
    (edge vectors, no shifts: SevenNet takes forces and virial from edge-vector gradients).
    """

    native = True

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


# ----------------------------------------------------------------------------- DeePMD


class DeePMDBatched:
    """DeePMD's own ``DeepPot.eval`` with all replicas as frames of one call (the PyTorch backend
    builds its neighbor list in torch on the model's device; positions travel as a few kB)."""

    native = True

    def __init__(self, calc: Any, numbers: np.ndarray, device: str | torch.device):
        from ase.data import chemical_symbols

        self.dp = calc.dp
        self.atype = [calc.type_dict[chemical_symbols[z]] for z in numbers]
        self.device = torch.device(device)
        self.name = "deepmd-frames"

    def __call__(self, positions: torch.Tensor, cells: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, _ = positions.shape
        pos = positions.detach().cpu().numpy().reshape(b, -1)
        cel = cells.detach().cpu().numpy().reshape(b, 9)
        e, f, v = self.dp.eval(coords=pos, cells=cel, atom_types=self.atype)[:3]
        t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float64, device=self.device)  # noqa: E731
        v = t(v).reshape(b, 3, 3)
        vol = torch.abs(torch.linalg.det(cells.double()))
        stress = -0.5 * (v + v.transpose(1, 2)) / vol[:, None, None]  # as deepmd.calculator.DP
        return t(e).reshape(b), t(f).reshape(b, n, 3), stress


# ----------------------------------------------------------------------------- M3GNet (matgl, DGL)


class M3GNetBatched:
    """matgl's ``Potential`` on one batched DGL graph of device-built edges (the DGL-era matgl
    that the study's M3GNet weights need; ``Potential`` takes batched graphs natively)."""

    native = True

    def __init__(self, calc: Any, numbers: np.ndarray, device: str | torch.device):
        import dgl  # noqa: F401  (the DGL backend; matgl >= 2 has another API: calculator loop)
        from ase.data import chemical_symbols

        self.device = torch.device(device)
        self.potential = calc.potential.to(self.device)
        self.cutoff = float(calc.cutoff)
        types = list(calc.element_types)
        self.node_type = torch.tensor([types.index(chemical_symbols[z]) for z in numbers], device=self.device)
        self.state_attr = getattr(calc, "state_attr", None)
        self.stress_weight = float(getattr(calc, "stress_weight", 1.0 / EV_A3_IN_GPA))
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


# ----------------------------------------------------------------------------- TorchSim models


class TorchSimPotential:
    """A TorchSim ``ModelInterface`` (positions concatenated over replicas, one call)."""

    native = True

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


def _ts_neighbor_list(positions: torch.Tensor, cell: torch.Tensor, pbc: Any, cutoff: Any
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Our device neighbor list with TorchSim's ``neighbor_list_fn`` signature (row-vector cell)."""
    i, j, shifts, _ = neighbor_list(positions, cell, float(cutoff))
    return torch.stack([i, j]), shifts.to(positions.dtype)


# ----------------------------------------------------------------------------- fallback


class CalculatorLoop:
    """Any ASE calculator, replica by replica (not native: one call per replica, on the CPU)."""

    native = False

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


# ----------------------------------------------------------------------------- choice


def native_family(model: Any) -> str | None:
    """The family whose device-side batched interface fits ``model`` (a LoadedModel), or None."""
    calc = model.calculator
    kind = type(calc).__name__
    if kind == "CHGNetCalculator":
        return "chgnet"
    if kind == "SevenNetCalculator":
        return "sevennet"
    if kind == "MACECalculator":
        return "mace"
    if kind == "DP" and type(calc).__module__.startswith("deepmd"):
        return "deepmd"
    if kind in ("PESCalculator", "M3GNetCalculator") and type(calc).__module__.startswith("matgl"):
        import importlib.util

        return "m3gnet" if importlib.util.find_spec("dgl") is not None else None
    return None


def batched_potential(model: Any, numbers: np.ndarray, masses: np.ndarray, device: str) -> BatchedPotential:
    """The batched potential for a LoadedModel: native where the family has one, else the loop."""
    family = native_family(model)
    calc = model.calculator
    if family == "chgnet":
        return CHGNetBatched(calc.model, numbers, device)
    if family == "sevennet":
        return SevenNetBatched(calc, numbers, device)
    if family == "deepmd":
        return DeePMDBatched(calc, numbers, device)
    if family == "m3gnet":
        return M3GNetBatched(calc, numbers, device)
    if family == "mace":
        try:
            ts_model = _torchsim_model(family, calc, device)
        except ImportError:
            return CalculatorLoop(calc, numbers, device)
        return TorchSimPotential(ts_model, numbers, masses, f"torchsim-{family}")
    return CalculatorLoop(calc, numbers, device)


def _torchsim_model(family: str, calc: Any, device: str) -> Any:
    from torch_sim.models.mace import MaceModel

    mace = calc.models[0]
    dtype = next(mace.parameters()).dtype
    return MaceModel(model=mace, device=torch.device(device), dtype=dtype, neighbor_list_fn=_ts_neighbor_list)
