"""A cheap PbTiO3-like model with a real ferroelectric transition (``synthetic:ferro``).

Not a model of PbTiO3's chemistry: a numpy ASE calculator whose phase diagram is known, so that
the harness's statistics, verdicts and Tc search can be tested against a ground truth.

Energy (eV; lengths in Angstrom), on an n x m x l supercell of the 5-atom perovskite cell:

* an elastic network around the cubic cell of lattice constant ``a0_A``: harmonic springs
  between Pb-O, O-O, Pb-Pb and Ti-Ti neighbours (up to 4.0 A in the ideal cell), rest lengths
  the ideal distances, ``1/2 k (d - d0)^2`` per bond.  Ti has no spring to O or Pb: it is held
  only by the local potential below;
* the local mode of each cell, ``u_i`` = Ti position minus the centre of its O6 cage, sits in a
  double well with cubic anisotropy (minima along +-x, +-y, +-z as in tetragonal PbTiO3)::

      A sum_a u_ia^2 + B sum_a u_ia^4 + C sum_{a<b} u_ia^2 u_ib^2

* nearest-neighbour (Ti-Ti) coupling of the local modes, ``-J u_i . u_j`` per bond;
* coupling to the homogeneous strain ``eta_a = L_a / (n_a a0) - 1`` of the cell,
  ``-g sum_i sum_a eta_a u_ia^2``: a polar cell elongates along its polarization, so NPT
  gives c/a > 1 below Tc and c/a -> 1 above it, and an imposed c/a > 1 (NVT) favours Pz.

Forces and stress are analytic (stress = (1/V) dE/d(strain), ASE convention, eV/A^3) and match
finite differences of the energy (``tests/harness/test_ferro_model.py``).  Energies are exactly
translation invariant.  The site map (which atom is which Ti, which O of which cage) is found from
the structure once per cell shape and atom set (:func:`pto_checks.structures.site_map`), so any
atom order works.

Measured (``python scripts/ferro_tc.py``, 3x3x3 cells = 135 atoms, ASE engine, NPT with the
study's Melchionna integrator, 2 fs, 50 ps per temperature, heating from the polar cell, seed 1;
:data:`MEASURED_TC`): polar at every temperature 500-800 K (per-frame |P| 0.5-0.6 C/m^2,
per-frame tetragonality 1.015-1.02), but from about 650 K the polar axis of the small cell turns
among x, y and z every ~10 ps, so the time-averaged c/a (long axis from the averaged lengths)
falls to 1.00 +- 0.005 and the harness's c/a verdicts are undecided at 650-775 K and "cubic" at
800 K.  The per-frame order parameter does not reach its disordered value (about 0.2 C/m^2 for
27 random local dipoles) below 1200 K (0.35 C/m^2 there); with ``J_eV_per_A2 = 0.3`` it does
between 600 and 800 K.  Not yet a sharp, harness-measurable Tc on 3x3x3: needs larger cells or a
stronger anisotropy / strain coupling (no axis switching) and an axis-free phase decision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from pto_checks import structures


@dataclass(frozen=True)
class FerroParameters:
    """Parameters of :class:`FerroCalculator` (units in the names)."""

    a0_A: float = 3.90
    k_PbO_eV_per_A2: float = 1.5
    k_OO_eV_per_A2: float = 1.0
    k_PbPb_eV_per_A2: float = 0.75
    k_TiTi_eV_per_A2: float = 0.75
    cutoff_A: float = 4.0
    A_eV_per_A2: float = -1.6
    B_eV_per_A4: float = 12.0
    C_eV_per_A4: float = 30.0
    J_eV_per_A2: float = 0.55
    g_eV_per_A2: float = 20.0
    energy_per_fu_eV: float = -8.0


#: The measured behaviour of the default parameters (scripts/ferro_tc.py; JSON in benchmarks/).
MEASURED_TC: dict[str, object] = {
    "cell": "3x3x3 (135 atoms)", "ensemble": "NPT melchionna", "run_ps": 50, "seed": 1,
    "polar_per_frame_up_to_K": 1200,
    "per_frame_P_abs_C_per_m2": {650: 0.61, 800: 0.52, 900: 0.43, 1000: 0.39, 1200: 0.35},
    "axis_switching_from_K": 650,
    "c_over_a_decided_tetragonal_K": [500, 600],
    "c_over_a_decided_cubic_K": [725, 800],
    "command": "python scripts/ferro_tc.py --steps 25000 --temperatures 650,700,725,750,775,800 "
               "--jobs 2 --samples-dir /tmp/ferro_samples --out benchmarks/ferro_tc_npt.json",
}


class FerroCalculator(Calculator):
    """Elastic network + local-mode double well + strain coupling (module docstring)."""

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, params: FerroParameters | None = None, **kwargs):
        super().__init__(**kwargs)
        self.params = params or FerroParameters()
        self._topo_key = None
        self._topo = None

    def identity(self) -> dict[str, object]:
        """What determines this model's output (for cache keys)."""
        return {"model": "ferro", **asdict(self.params)}

    # -- topology ---------------------------------------------------------------------------------

    def _reps(self, atoms: Atoms) -> tuple[int, int, int]:
        reps = np.rint(np.linalg.norm(atoms.cell.array, axis=1) / self.params.a0_A).astype(int)
        if np.any(reps < 1) or 5 * int(np.prod(reps)) != len(atoms):
            raise ValueError(f"synthetic:ferro needs an n x m x l supercell of the 5-atom PbTiO3 cell "
                             f"(a ~ {self.params.a0_A} A); got {len(atoms)} atoms, cell lengths "
                             f"{atoms.cell.lengths()}")
        return tuple(int(r) for r in reps)

    def _topology(self, atoms: Atoms):
        reps = self._reps(atoms)
        key = (reps, atoms.numbers.tobytes())
        if self._topo_key == key:
            return self._topo
        p = self.params
        smap = structures.site_map(atoms.numbers, atoms.positions, atoms.cell.array, reps)
        reps_a = np.array(reps)
        # ideal supercell in the same atom order: springs between neighbours of the ideal cell
        basis = np.empty(len(atoms), dtype=int)
        cidx = np.empty((len(atoms), 3), dtype=int)
        for idx in np.ndindex(*reps, 5):
            basis[smap[idx]] = idx[3]
            cidx[smap[idx]] = idx[:3]
        ideal_frac = (cidx + structures.IDEAL_SITES[basis]) / reps_a
        ideal = Atoms(atoms.numbers, scaled_positions=ideal_frac, cell=np.diag(reps_a * p.a0_A), pbc=True)
        from ase.neighborlist import neighbor_list

        i, j, d, S = neighbor_list("ijdS", ideal, p.cutoff_A)
        sym = np.array(ideal.get_chemical_symbols())
        kmap = {("O", "Pb"): p.k_PbO_eV_per_A2, ("O", "O"): p.k_OO_eV_per_A2,
                ("Pb", "Pb"): p.k_PbPb_eV_per_A2, ("Ti", "Ti"): p.k_TiTi_eV_per_A2}
        k = np.array([kmap.get(tuple(sorted((a, b))), 0.0) for a, b in zip(sym[i], sym[j], strict=True)])
        keep = (k > 0) & (i < j) | (k > 0) & (i == j)  # each bond once (self-images along short axes)
        keep &= ~((i == j) & ~_first_half(S))
        sp_i, sp_j = i[keep], j[keep]
        sp_e = ideal_frac[sp_j] + S[keep] - ideal_frac[sp_i]
        sp_d0, sp_k = d[keep], k[keep]
        # local modes: Ti of each cell and its six O (O_a at this cell and at the next along a)
        ti = smap[..., 1].reshape(-1)
        cells = np.array(list(np.ndindex(*reps)))
        cage, cage_e = [], []
        for b, ax in structures.O_BOND_AXIS.items():
            for step in (0, 1):
                c2 = cells.copy()
                c2[:, ax] += step
                off = np.zeros(3)
                off[ax] = step
                o_idx = smap[c2[:, 0] % reps[0], c2[:, 1] % reps[1], c2[:, 2] % reps[2], b]
                cage.append(o_idx)
                cage_e.append((structures.IDEAL_SITES[b] + off - structures.IDEAL_SITES[1]) / reps_a)
        cage = np.stack(cage, axis=1)  # (ncell, 6)
        cage_e = np.stack(cage_e)  # (6, 3) fractional Ti -> O vectors of the ideal cell
        # Ti-Ti bonds for J: each cell to its +x, +y, +z neighbour (cell list order = ti order)
        flat = {tuple(c): n for n, c in enumerate(cells)}
        nb_i, nb_j = [], []
        for n, c in enumerate(cells):
            for ax in range(3):
                c2 = c.copy()
                c2[ax] = (c2[ax] + 1) % reps[ax]
                nb_i.append(n)
                nb_j.append(flat[tuple(c2)])
        self._topo = (reps_a, sp_i, sp_j, sp_e, sp_d0, sp_k, ti, cage, cage_e, np.array(nb_i), np.array(nb_j))
        self._topo_key = key
        return self._topo

    # -- energy, forces, stress -------------------------------------------------------------------

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        p = self.params
        reps_a, sp_i, sp_j, sp_e, sp_d0, sp_k, ti, cage, cage_e, nb_i, nb_j = self._topology(atoms)
        h = atoms.cell.array
        vol = abs(np.linalg.det(h))
        frac = np.linalg.solve(h.T, atoms.positions.T).T
        forces = np.zeros_like(atoms.positions)
        virial = np.zeros((3, 3))  # dE/d(strain)

        # springs
        df = frac[sp_j] - frac[sp_i]
        df -= np.rint(df - sp_e)
        rij = df @ h
        dist = np.linalg.norm(rij, axis=1)
        stretch = dist - sp_d0
        energy = 0.5 * float(np.sum(sp_k * stretch**2))
        f = (sp_k * stretch / dist)[:, None] * rij  # -dE/dr_i
        np.add.at(forces, sp_i, f)
        np.add.at(forces, sp_j, -f)
        virial += np.einsum("pa,pb->ab", rij, f)

        # local modes u = r_Ti - mean(r_O of the cage), minimum image about the ideal vectors
        dfo = frac[cage] - frac[ti][:, None, :]
        dfo -= np.rint(dfo - cage_e[None, :, :])
        u = -(dfo @ h).mean(axis=1)  # (ncell, 3)
        lengths = np.linalg.norm(h, axis=1)
        eta = lengths / (reps_a * p.a0_A) - 1.0
        u2 = u**2
        s2 = u2.sum(axis=1, keepdims=True)
        pair = 0.5 * (s2**2 - (u2**2).sum(axis=1, keepdims=True))  # sum_{a<b} u_a^2 u_b^2
        e_loc = p.A_eV_per_A2 * u2.sum() + p.B_eV_per_A4 * (u2**2).sum() + p.C_eV_per_A4 * pair.sum()
        e_j = -p.J_eV_per_A2 * float(np.sum(u[nb_i] * u[nb_j]))
        e_s = -p.g_eV_per_A2 * float(np.sum(u2 @ eta))
        energy += float(e_loc) + e_j + e_s
        grad = (2 * p.A_eV_per_A2 * u + 4 * p.B_eV_per_A4 * u**3 + 2 * p.C_eV_per_A4 * u * (s2 - u2)
                - 2 * p.g_eV_per_A2 * eta[None, :] * u)
        gj = np.zeros_like(u)
        np.add.at(gj, nb_i, u[nb_j])
        np.add.at(gj, nb_j, u[nb_i])
        grad -= p.J_eV_per_A2 * gj
        forces[ti] -= grad
        np.add.at(forces, cage.ravel(), np.repeat(grad / 6.0, 6, axis=0))
        virial += grad.T @ u  # u deforms with the cell: dE/d(eps_ab) = sum_i grad_ia u_ib
        de_deta = -p.g_eV_per_A2 * u2.sum(axis=0)
        virial += np.einsum("a,a,ab,ac->bc", de_deta, (1 + eta) / lengths**2, h, h)

        energy += p.energy_per_fu_eV * len(atoms) / 5
        stress = 0.5 * (virial + virial.T) / vol
        self.results = {"energy": energy, "free_energy": energy, "forces": forces,
                        "stress": stress.flat[[0, 4, 8, 5, 2, 1]]}


def _first_half(S: np.ndarray) -> np.ndarray:
    """For self-image bonds (i == j) keep one of the pair S, -S: the lexicographically positive."""
    s = np.asarray(S)
    first = np.where(s[:, 0] != 0, s[:, 0], np.where(s[:, 1] != 0, s[:, 1], s[:, 2]))
    return first > 0


def make(params: FerroParameters | None = None) -> FerroCalculator:
    """The ``synthetic:ferro`` calculator (default parameters unless given)."""
    return FerroCalculator(params)
