"""Small, cheap, deliberately flawed reference calculators for the harness's own tests.

They are *not* models of PbTiO3's physics; each is built so that one check must pass or fail.
The base is an elastic network: harmonic springs between every pair of atoms closer than a
cutoff in a reference structure, with rest lengths taken from that structure,

    E = E0 * N_fu + 1/2 sum_ij k_ij (|r_ij| - d_ij)^2        (eV, Angstrom)

plus an optional double well in the polar displacement (for dynamic checks).  Pair identity is
tied to atom order in the unit cell, so the model works for any n x m x l supercell built with
:func:`pto_checks.structures.supercell`.  Energies are exactly translation and rotation invariant.

Variants (``--model synthetic:<variant>``):

``good``             springs around the PBEsol tetragonal cell: passes the 0 K and phonon checks.
``paraelectric``     springs around the cubic cell: the "tetragonal" relaxation collapses to c/a = 1.
``supertetragonal``  springs around a c/a = 1.24 cell (PBE-like overestimate).
``compressed``       the good cell shrunk by 4%: wrong lattice constant.
``unstable``         good springs, but Pb-O springs negative: the PBEsol cell is a saddle point,
                     with imaginary phonons.
``shallow``          good cell, springs 5x softer: dE(cubic - tetragonal) far below PBEsol's.
``gpa_stress``       the good model reporting stress in GPa instead of eV/A^3.
``not_invariant``    the good model plus a term in the absolute positions (breaks translation
                     invariance, as a model that forgot periodic wrapping would).
``nan``              returns NaN forces.
``zone_unstable``    good springs, but O-O springs negative (-0.5x): the PBEsol cell is a stationary
                     point with imaginary phonons across the zone (lowest at A, exact in the 2x2x2
                     supercell), as the study reports for M3GNet.
``soft_shear``       ORB-like: a weak instability near, not at, Gamma.  The good network plus negative
                     springs (-0.02 eV/A^2) between same-element second neighbours along the in-plane
                     face diagonals (a, a, 0): the transverse acoustic branch along (0, q, 0) dips to
                     -0.11 THz (4 cm^-1) at q ~ 0.21 and is real again at the zone boundary, every
                     optic mode and every mode at Gamma stays real, and C66 < 0 (-0.7 GPa).  In a
                     2x2x2 or 3x3x3 supercell the dip is only interpolated; q = 1/4 (4x4x4) is
                     exact.  Excluding the three lowest branches, or "interpolated acoustic"
                     dips, would pass it.
``metastable_p4mm``  P4mm is only a local minimum: the lowest of the good network and four P4mm-related
                     networks around cells with Ti moved 0.2 A along +-x or +-y (the polarization
                     rotated), whose Ti-Ti springs are negative (stable in the 5-atom
                     cell, unstable at the zone boundary M) and whose minima lie ~30 meV/f.u. below P4mm
                     (:class:`SoftMinCalculator`). With P4mm held every 0 K and phonon check
                     passes; relaxed without constraint it leaves P4mm, and the phonons of that
                     cell are imaginary.

For MD (stiff springs, 38x the 0 K variants', so that the crystal holds together at 1000 K):

``md_polar``           stays tetragonal and polar at every temperature (misses the transition).
``md_cubic``           cubic and paraelectric already at 300 K.
``md_supertetragonal`` runs away to c/a = 1.24.
``liquid``             a weak Lennard-Jones fluid (sigma 2.0 A, epsilon 1 meV): melts/evaporates.
``heating``            md_polar plus a force along each atom's momentum (0.1/fs x p: the gradient of
                       no energy), which pumps energy in as a model with broken energy conservation
                       does: the MD stops on the kinetic-temperature bound.

For the conservation tier (:mod:`pto_checks.conservation`; ``md_polar`` is the conservative one):

``curl_force``         md_polar with every spring's force partly turned about z: on top of the central
                       k (|r_ij| - d_ij) r_ij/|r_ij|, a term 0.2 k (|r_ij| - d_ij) z x r_ij/|r_ij|.
                       Momentum-conserving and zero at the minimum, but its force constants are not
                       symmetric, so it has a curl and no energy has it as its gradient (a directly
                       predicted force that is not -dE/dx).  Energy and stress are md_polar's.
``cutoff_step``        md_polar plus 5 meV for every Pb-O pair closer than 2.80 A, with no smooth
                       envelope: the energy steps where a Pb-O distance crosses 2.80 A (it sits at
                       2.78-2.80 A in the P4mm cells) while forces and stress, the derivatives, stay
                       md_polar's (``pto_cutoffs_A`` names the cutoff).

With a real ferroelectric transition (:mod:`pto_checks.models.ferro`):

``ferro``              local-mode double well + neighbour and strain coupling: tetragonal and
                       polar below Tc (about 650 K on 3x3x3 cells), cubic above (ground truth for
                       the statistics, verdicts and Tc search).
For the accuracy tier (a TEST ORACLE, not a model: it looks the frame up in the PbTiO3 AIMD data and
returns its DFT labels, so it only works on those 40-atom frames; it needs the data, see
:mod:`pto_checks.accuracy.data`):

``aimd_oracle``        the DFT energy, forces and stress of the matching frame: passes the tier.
``aimd_force_noise``   the oracle plus Gaussian noise of 0.3 eV/A per force component (seeded).
``aimd_energy_drift``  the oracle with its energy drifting with the configuration: E + 0.3 (E - E_ref),
                       forces and stress untouched (30 % of the DFT energy spread, 6-16 meV/atom).
``aimd_gpa_stress``    the oracle reporting its stress in GPa instead of eV/A^3.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import neighbor_list

VARIANTS = (
    "good",
    "paraelectric",
    "supertetragonal",
    "compressed",
    "unstable",
    "shallow",
    "gpa_stress",
    "not_invariant",
    "nan",
    "zone_unstable",
    "soft_shear",
    "metastable_p4mm",
    "md_polar",
    "md_cubic",
    "md_supertetragonal",
    "liquid",
    "heating",
    "curl_force",
    "cutoff_step",
    "ferro",
    "aimd_oracle",
    "aimd_force_noise",
    "aimd_energy_drift",
    "aimd_gpa_stress",
)

#: Spring constants, eV/A^2, by unordered element pair; scaled so that the cubic cell (symmetry
#: held) lies about 0.08 eV/f.u. above the tetragonal one, as in PBEsol.
_K_GOOD = {p: 0.026 * k for p, k in {("O", "Ti"): 8.0, ("O", "Pb"): 3.0, ("O", "O"): 2.0,
                                     ("Pb", "Ti"): 1.5, ("Pb", "Pb"): 1.5, ("Ti", "Ti"): 1.5}.items()}


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class ElasticNetworkCalculator(Calculator):
    """Elastic network around a 5-atom PbTiO3 reference cell (see module docstring).

    ``reference``: the unit cell whose geometry is the energy minimum.
    ``k``: spring constants by element pair (eV/A^2).  ``cutoff``: pair cutoff (A); pairs shorter
    than ``min_distance`` (A) get no spring (a shell of further neighbours only).
    ``rest_scale``: rest lengths by element pair as multiples of the reference distances (other
    than 1: frustrated springs, so the relaxed cell is prestressed).
    ``energy_offset``: added per atom (eV).
    ``absolute_field``: eV/A times the sum of all coordinates.  ``stress_scale``: factor applied to the stress
    (e.g. 1/units.GPa to report GPa).  ``nan_forces``: return NaN forces.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(
        self,
        reference: Atoms,
        k: dict[tuple[str, str], float] | None = None,
        cutoff: float = 4.2,
        energy_offset: float = 0.0,
        absolute_field: float = 0.0,
        energy_per_fu: float = -8.0,
        stress_scale: float = 1.0,
        nan_forces: bool = False,
        min_distance: float = 0.0,
        rest_scale: dict[tuple[str, str], float] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.reference = reference.copy()
        self.k = dict(_K_GOOD if k is None else k)
        self.cutoff = cutoff
        self.energy_offset = energy_offset
        self.absolute_field = absolute_field
        self.energy_per_fu = energy_per_fu
        self.stress_scale = stress_scale
        self.nan_forces = nan_forces
        self.min_distance = min_distance
        self.rest_scale = dict(rest_scale or {})
        self._pairs = self._reference_pairs()

    def _reference_pairs(self) -> dict[tuple[int, int, int, int, int], tuple[float, float]]:
        """Map (i, j, shift in unit cells) of the reference cell -> (rest length, k)."""
        ref = self.reference
        i, j, d, S = neighbor_list("ijdS", ref, self.cutoff)
        sym = ref.get_chemical_symbols()
        out = {}
        for ii, jj, dd, ss in zip(i, j, d, S, strict=True):
            kk = self.k.get(_pair(sym[ii], sym[jj]), 0.0)
            if kk != 0.0 and dd >= self.min_distance:
                d0 = float(dd) * self.rest_scale.get(_pair(sym[ii], sym[jj]), 1.0)
                out[(int(ii), int(jj), int(ss[0]), int(ss[1]), int(ss[2]))] = (d0, kk)
        return out

    def _topology(self, atoms: Atoms):
        """Pair list of a supercell of the reference: (i, j, expected fractional vector, d0, k)."""
        n5 = len(self.reference)
        ref_len = np.linalg.norm(self.reference.cell.array, axis=1)
        reps = np.maximum(1, np.rint(np.linalg.norm(atoms.cell.array, axis=1) / ref_len)).astype(int)
        key = (len(atoms), tuple(reps), atoms.numbers.tobytes())
        cached = getattr(self, "_topo", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        if len(atoms) % n5 or np.prod(reps) * n5 != len(atoms):
            raise ValueError(
                f"atoms must be an n x m x l supercell of the 5-atom reference (got {len(atoms)} "
                f"atoms, cell lengths / reference = {reps})"
            )
        ref_frac = self.reference.get_scaled_positions(wrap=False)
        # Assign each atom its reference site and unit cell from its position (any atom order:
        # ASE's repeat and phonopy's supercells order atoms differently).
        u = np.linalg.solve(atoms.cell.array.T, atoms.positions.T).T * reps
        # remove a rigid translation: anchor on the first Pb (one Pb site per cell)
        b_pb = int(np.flatnonzero(self.reference.numbers == 82)[0])
        a_pb = int(np.flatnonzero(atoms.numbers == 82)[0])
        delta = u[a_pb] - ref_frac[b_pb]
        u = u - (delta - np.rint(delta))
        index = {}
        for a in range(len(atoms)):
            best = None
            for b in range(n5):
                if self.reference.numbers[b] != atoms.numbers[a]:
                    continue
                n = np.rint(u[a] - ref_frac[b])
                resid = np.linalg.norm((u[a] - ref_frac[b] - n) @ self.reference.cell.array)
                if best is None or resid < best[0]:
                    best = (resid, b, n)
            _, b, n = best
            index[(b, tuple(int(v) for v in np.mod(n, reps)))] = a
        if len(index) != len(atoms):
            raise ValueError("atoms are too far from the reference sites to assign them")
        cells = np.array([(x, y, z) for x in range(reps[0]) for y in range(reps[1])
                          for z in range(reps[2])])
        ii, jj, E, D0, K = [], [], [], [], []
        for c in cells:
            for (i, j, sx, sy, sz), (d0, kk) in self._pairs.items():
                s = np.array([sx, sy, sz])
                cj = tuple(int(v) for v in np.mod(c + s, reps))
                ii.append(index[(i, tuple(int(v) for v in c))])
                jj.append(index[(j, cj)])
                E.append((ref_frac[j] + s - ref_frac[i]) / reps)
                D0.append(d0)
                K.append(kk)
        topo = (np.array(ii), np.array(jj), np.array(E), np.array(D0), np.array(K))
        self._topo = (key, topo)
        return topo

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        ii, jj, E, D0, K = self._topology(atoms)
        cell = atoms.cell.array
        frac = np.linalg.solve(cell.T, atoms.positions.T).T
        df = frac[jj] - frac[ii]
        df -= np.rint(df - E)  # robust to atoms wrapped across the periodic boundary
        rij = df @ cell
        dist = np.linalg.norm(rij, axis=1)
        stretch = dist - D0
        # each pair appears twice (i->j and j->i): halve the energy and the force
        energy = 0.25 * float(np.sum(K * stretch**2))
        f = (0.5 * K * stretch / dist)[:, None] * rij  # force on i along +rij
        forces = np.zeros_like(atoms.positions)
        np.add.at(forces, ii, f)
        np.add.at(forces, jj, -f)
        virial = np.einsum("pa,pb->ab", rij, f)  # = V * dE/d(strain)
        energy += self.energy_per_fu * len(atoms) / 5 + self.energy_offset * len(atoms)
        stress = virial / atoms.get_volume()
        stress = 0.5 * (stress + stress.T) * self.stress_scale
        if self.absolute_field:  # E += g * sum of cartesian coordinates (eV/A)
            energy += self.absolute_field * float(atoms.positions.sum())
            forces -= self.absolute_field
        if self.nan_forces:
            forces[:] = np.nan
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": forces,
            "stress": stress.flat[[0, 4, 8, 5, 2, 1]],
        }


class HeatingCalculator(ElasticNetworkCalculator):
    """An elastic network whose forces have an extra ``rate_per_fs / fs * p`` on each atom (``p``
    its momentum): not conservative, it heats any MD run (``heating`` variant)."""

    def __init__(self, reference: Atoms, rate_per_fs: float = 0.1, **kwargs):
        super().__init__(reference, **kwargs)
        self.rate_per_fs = rate_per_fs

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.atoms.has("momenta"):
            self.results["forces"] = self.results["forces"] + self.rate_per_fs / units.fs * self.atoms.get_momenta()


class CurlForceCalculator(ElasticNetworkCalculator):
    """An elastic network whose spring forces are partly turned about z: each spring adds
    ``curl_fraction`` x k (|r_ij| - d_ij) z x r_ij/|r_ij| on i (the opposite on j).  Newton's third
    law holds, but the force constants are not symmetric: the term has a curl, so the forces are
    not the gradient of any energy (``curl_force`` variant).  Energy and stress are the network's."""

    def __init__(self, reference: Atoms, curl_fraction: float = 0.2, **kwargs):
        super().__init__(reference, **kwargs)
        self.curl_fraction = curl_fraction

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        ii, jj, E, D0, K = self._topology(self.atoms)
        cell = self.atoms.cell.array
        frac = np.linalg.solve(cell.T, self.atoms.positions.T).T
        df = frac[jj] - frac[ii]
        df -= np.rint(df - E)
        rij = df @ cell
        dist = np.linalg.norm(rij, axis=1)
        # each pair appears twice (i->j and j->i): halved, as the network's own force
        f = (0.5 * self.curl_fraction * K * (dist - D0) / dist)[:, None] * np.cross([0.0, 0.0, 1.0], rij)
        extra = np.zeros_like(self.atoms.positions)
        np.add.at(extra, ii, f)
        np.add.at(extra, jj, -f)
        self.results["forces"] = self.results["forces"] + extra


class CutoffStepCalculator(ElasticNetworkCalculator):
    """An elastic network plus ``step_eV`` for every pair of ``elements`` closer than ``step_cutoff_A``,
    with no smooth envelope (``cutoff_step`` variant): the energy steps where such a pair distance
    crosses the cutoff; forces and stress (derivatives, zero for a constant) are the network's."""

    def __init__(self, reference: Atoms, step_eV: float = 0.005, step_cutoff_A: float = 2.80,
                 elements: tuple[str, str] = ("O", "Pb"), **kwargs):
        super().__init__(reference, **kwargs)
        self.step_eV, self.step_cutoff_A, self.elements = step_eV, step_cutoff_A, tuple(sorted(elements))
        self.pto_cutoffs_A = {f"{self.elements[0]}-{self.elements[1]} step term": step_cutoff_A}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        i, j = neighbor_list("ij", self.atoms, self.step_cutoff_A)
        sym = np.array(self.atoms.get_chemical_symbols())
        n = int(np.sum([_pair(a, b) == self.elements for a, b in zip(sym[i], sym[j], strict=True)])) // 2
        self.results["energy"] += self.step_eV * n
        self.results["free_energy"] = self.results["energy"]


class SoftMinCalculator(Calculator):
    """The smooth minimum of several calculators' energy surfaces (eV, eV/A, eV/A^3):

        E = -s ln sum_k exp(-E_k / s),   s = ``smoothing_per_fu`` x number of formula units,

    forces and stress the weighted sums of the members' with weights softmax(-E_k / s): exactly
    the gradient of E.  Where one member lies far below the others (>> s) E is that member's.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, members: list[Calculator], smoothing_per_fu: float = 5e-5, **kwargs):
        super().__init__(**kwargs)
        self.members = members
        self.smoothing_per_fu = smoothing_per_fu

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        res = []
        for m in self.members:
            a = self.atoms.copy()
            a.calc = m
            res.append((a.get_potential_energy(), a.get_forces(), a.get_stress()))
        e = np.array([r[0] for r in res])
        s = self.smoothing_per_fu * len(self.atoms) / 5
        z = -(e - e.min()) / s
        w = np.exp(z) / np.exp(z).sum()
        energy = float(e.min() - s * np.log(np.exp(z).sum()))
        forces = sum(wk * r[1] for wk, r in zip(w, res, strict=True))
        stress = sum(wk * r[2] for wk, r in zip(w, res, strict=True))
        self.results = {"energy": energy, "free_energy": energy, "forces": forces, "stress": stress}


def _metastable_p4mm() -> Calculator:
    from pto_checks import structures

    good = structures.tetragonal()
    k = dict(_K_GOOD)
    k[("Ti", "Ti")] = -5.0 * _K_GOOD[("Ti", "Ti")]
    members: list[Calculator] = [ElasticNetworkCalculator(good)]
    gap = 0.002  # eV/f.u.: how far above the P4mm minimum the other networks lie at the P4mm cell
    for v in ((0.2, 0, 0), (-0.2, 0, 0), (0, 0.2, 0), (0, -0.2, 0)):
        ref = good.copy()
        ref.positions[1] += v
        probe = good.copy()
        probe.calc = ElasticNetworkCalculator(ref, k=k, energy_per_fu=0.0)
        strain = probe.get_potential_energy()  # energy of the moved network at the P4mm cell
        members.append(ElasticNetworkCalculator(ref, k=k, energy_per_fu=-8.0 + gap - strain))
    return SoftMinCalculator(members)


class AimdOracleCalculator(Calculator):
    """TEST ORACLE for the accuracy tier: returns the DFT labels of the AIMD frame whose positions and
    cell match ``atoms`` (to 1e-6 A), optionally corrupted (``force_noise`` eV/A, ``energy_drift``
    fraction of E - ``energy_reference``, ``stress_scale``). Any other structure is an error."""

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, force_noise: float = 0.0, energy_drift: float = 0.0, stress_scale: float = 1.0,
                 energy_reference: float = -35253.0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        from pto_checks.accuracy import data

        try:
            root = data.ensure(None, allow_fetch=False)
        except data.DataUnavailable as exc:
            from pto_checks.models.base import ModelUnavailable

            raise ModelUnavailable("synthetic:aimd_*", "weights", f"the test oracle needs the data: {exc}") from None
        self._frames = {}
        for t in data.TEMPERATURES_K:
            fs = data.load(root, t)
            for i in range(len(fs)):
                self._frames[self._key(fs.positions[i], fs.cells[i])] = (fs.energy[i], fs.forces[i], fs.stress[i])
        self.force_noise, self.energy_drift, self.stress_scale = force_noise, energy_drift, stress_scale
        self.energy_reference = energy_reference
        self._rng = np.random.default_rng(seed)

    @staticmethod
    def _key(positions: np.ndarray, cell: np.ndarray) -> bytes:
        return np.round(np.concatenate([positions.ravel(), np.asarray(cell).ravel()]), 6).tobytes()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        hit = self._frames.get(self._key(self.atoms.positions, self.atoms.cell.array))
        if hit is None:
            raise ValueError("AimdOracleCalculator: not one of the AIMD frames (a test oracle only knows those)")
        e, f, s = hit
        e = float(e) + self.energy_drift * (float(e) - self.energy_reference)
        f = f + self.force_noise * self._rng.standard_normal(f.shape)
        s = s * self.stress_scale
        self.results = {"energy": e, "free_energy": e, "forces": f, "stress": s.flat[[0, 4, 8, 5, 2, 1]]}


def make(variant: str) -> Calculator:
    """Build the synthetic calculator ``variant`` (one of :data:`VARIANTS`)."""
    from pto_checks import structures

    if variant.startswith("aimd_"):
        return {"aimd_oracle": lambda: AimdOracleCalculator(),
                "aimd_force_noise": lambda: AimdOracleCalculator(force_noise=0.3),
                "aimd_energy_drift": lambda: AimdOracleCalculator(energy_drift=0.3),
                "aimd_gpa_stress": lambda: AimdOracleCalculator(stress_scale=1 / units.GPa)}[variant]()

    good = structures.tetragonal()
    if variant == "good":
        return ElasticNetworkCalculator(good)
    if variant == "paraelectric":
        return ElasticNetworkCalculator(structures.cubic(3.93))
    if variant == "supertetragonal":
        return ElasticNetworkCalculator(structures.tetragonal(a=3.80, c=4.71))
    if variant == "compressed":
        ref = good.copy()
        ref.set_cell(ref.cell * 0.96, scale_atoms=True)
        return ElasticNetworkCalculator(ref)
    if variant == "unstable":
        k = dict(_K_GOOD)
        k[("O", "Pb")] = -0.5 * _K_GOOD[("O", "Pb")]
        return ElasticNetworkCalculator(good, k=k)
    if variant == "zone_unstable":
        k = dict(_K_GOOD)
        k[("O", "O")] = -0.5 * _K_GOOD[("O", "O")]
        return ElasticNetworkCalculator(good, k=k)
    if variant == "soft_shear":
        from ase.calculators.mixing import SumCalculator

        diagonals = ElasticNetworkCalculator(good, k={("Pb", "Pb"): -0.02, ("Ti", "Ti"): -0.02, ("O", "O"): -0.02},
                                             cutoff=5.55, min_distance=5.0, energy_per_fu=0.0)
        return SumCalculator([ElasticNetworkCalculator(good), diagonals])
    if variant == "metastable_p4mm":
        return _metastable_p4mm()
    if variant == "shallow":
        return ElasticNetworkCalculator(good, k={p: v * 0.2 for p, v in _K_GOOD.items()})
    if variant == "gpa_stress":
        return ElasticNetworkCalculator(good, stress_scale=1 / units.GPa)
    if variant == "not_invariant":
        return ElasticNetworkCalculator(good, absolute_field=0.01)
    if variant == "nan":
        return ElasticNetworkCalculator(good, nan_forces=True)
    stiff = {p: v / 0.026 for p, v in _K_GOOD.items()}
    if variant == "md_polar":
        return ElasticNetworkCalculator(good, k=stiff)
    if variant == "heating":
        return HeatingCalculator(good, k=stiff)
    if variant == "curl_force":
        return CurlForceCalculator(good, k=stiff)
    if variant == "cutoff_step":
        return CutoffStepCalculator(good, k=stiff)
    if variant == "md_cubic":
        return ElasticNetworkCalculator(structures.cubic(3.93), k=stiff)
    if variant == "md_supertetragonal":
        return ElasticNetworkCalculator(structures.tetragonal(a=3.80, c=4.71), k=stiff)
    if variant == "ferro":
        from pto_checks.models.ferro import make as make_ferro

        return make_ferro()
    if variant == "liquid":
        from ase.calculators.lj import LennardJones

        return LennardJones(sigma=2.0, epsilon=0.001, rc=5.0, smooth=True)
    raise ValueError(f"unknown synthetic variant {variant!r}; known: {', '.join(VARIANTS)}")
