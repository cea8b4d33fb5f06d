"""Cached pipeline stages: model + protocol -> relaxed phases -> observables; -> phonons; the MD
sweeps (:func:`pto_checks.md.sweep.md_sweep`, re-exported here).

Each stage is keyed by the model's identity (including its weights fingerprint), the
protocol fields that change its result (declared on the protocol dataclasses:
:func:`pto_checks.protocols.key_parts`) and the stage's code version
(:data:`pto_checks.cache.STAGE_VERSIONS`).  Every cache read is validated by the stage's
``*_valid(folder, data)`` hook; an entry that fails is moved aside and recomputed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ase.io
import numpy as np

from pto_checks import analysis, phonons, relax
from pto_checks.cache import Cache, CorruptEntry, check_file, stage_key
from pto_checks.md.sweep import md_key, md_sweep
from pto_checks.md.task import sweep_tasks as md_tasks
from pto_checks.models import LoadedModel
from pto_checks.protocols import Protocol, key_parts


def ground_state_key(model: LoadedModel, protocol: Protocol) -> tuple[str, dict[str, Any]]:
    return stage_key("ground_state", model=model.identity(), protocol=key_parts(protocol.static, "ground_state"))


def _read_cell(path: Path):
    atoms = ase.io.read(path)
    if len(atoms) == 0 or not np.all(np.isfinite(atoms.positions)) or abs(atoms.get_volume()) < 1e-6:
        raise ValueError("no atoms, non-finite positions or a degenerate cell")
    return atoms


def ground_state_valid(folder: Path, data: dict[str, Any]) -> None:
    """Validator of a ground-state entry: both relaxed cells read back; the observables are numbers."""
    for name in ("tetragonal.extxyz", "cubic.extxyz"):
        check_file(folder, name, _read_cell)
    for k in ("a", "c", "c_over_a", "delta_e", "cubic_a"):
        v = data.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise CorruptEntry(folder / "meta.json", f"data.{k} = {v!r}: missing or not a finite number")


def phonon_key(model: LoadedModel, protocol: Protocol, atoms, supercell=None) -> tuple[str, dict[str, Any]]:
    """(key, inputs) of one supercell's phonon entry (default: the protocol's supercell): every phonon
    field that changes a result (the escalation list too: over-keyed, never stale) and the symmetry
    fields of the static protocol."""
    sc = list(supercell if supercell is not None else protocol.phonon.supercell)
    return stage_key("phonons", model=model.identity(), protocol=key_parts(protocol.phonon, "phonons"),
                     static=key_parts(protocol.static, "phonons"), supercell=sc,
                     structure=atoms.get_positions().round(8).tolist() + atoms.cell.array.round(8).tolist())


_BAND_ARRAYS = ("band_q", "band_freq", "band_distance", "label_positions", "labels", "mesh_q", "mesh_freq")


def _read_bands(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:  # never unpickle what the cache holds
        out = {k: z[k] for k in _BAND_ARRAYS}
    for k in ("band_freq", "mesh_freq"):
        if out[k].size == 0 or not np.all(np.isfinite(out[k])):
            raise ValueError(f"{k} empty or not finite")
    return out


def _read_band_yaml(path: Path) -> None:
    import yaml  # PyYAML, a phonopy dependency; safe loading only

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open() as fh:
        doc = yaml.load(fh, Loader=loader)  # noqa: S506 (a safe loader)
    if not isinstance(doc, dict) or not isinstance(doc.get("phonon"), list):
        raise ValueError("no 'phonon' section (truncated?)")
    nq, nb = doc.get("nqpoint"), 3 * int(doc.get("natom", 0))
    if len(doc["phonon"]) != nq or any(len(q.get("band") or ()) != nb for q in doc["phonon"]):
        raise ValueError(f"{len(doc['phonon'])} q-points of {nq}, or not {nb} bands each (truncated?)")


def _non_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise ValueError("empty file")


def phonon_valid(folder: Path, data: dict[str, Any]) -> None:
    """Validator of one supercell's phonon entry: ``bands.npz`` holds every array (no pickles), finite;
    ``band.yaml`` complete; ``phonopy_params.yaml`` present."""
    check_file(folder, "bands.npz", _read_bands)
    check_file(folder, "band.yaml", _read_band_yaml)
    check_file(folder, "phonopy_params.yaml", _non_empty)
    if not isinstance(data.get("n_displacements"), int):
        raise CorruptEntry(folder / "meta.json", "'n_displacements' missing or not an integer")

__all__ = ["ground_state", "md_key", "md_sweep", "md_tasks", "phonon_stage"]


def ground_state(model: LoadedModel, protocol: Protocol, cache: Cache) -> tuple[Path, dict[str, Any]]:
    """Relaxed tetragonal (P4mm held) and cubic cells and their observables (cached), and the
    unconstrained tetragonal relaxation ("does the model keep P4mm?").

    Observables: ``a``, ``c`` (Angstrom, long axis found), ``c_over_a``, ``delta_e``
    (E(cubic) - E(tetragonal), eV/f.u.), ``cubic_a``, both relaxations' summaries and
    ``symmetry`` (:class:`pto_checks.relax.SymmetryObservation`).
    Files: ``tetragonal.extxyz``, ``cubic.extxyz``, ``tetragonal_free.extxyz`` (if it finished).
    """
    key, inputs = ground_state_key(model, protocol)
    s = protocol.static

    def compute(folder: Path) -> dict[str, Any]:
        gs = relax.relax_phases(model.calculator, fmax=s.fmax, max_steps=s.max_steps, symprec=s.symprec,
                                hold_symmetry=s.hold_symmetry, free_start_rattle_A=s.free_start_rattle_A,
                                free_start_shear=s.free_start_shear, free_start_seed=s.free_start_seed)
        ase.io.write(folder / "tetragonal.extxyz", gs.tetragonal.atoms)
        ase.io.write(folder / "cubic.extxyz", gs.cubic.atoms)
        if gs.tetragonal_free is not None:
            ase.io.write(folder / "tetragonal_free.extxyz", gs.tetragonal_free.atoms)
        lat = analysis.lattice_parameters(gs.tetragonal.atoms.cell)
        cub = analysis.lattice_parameters(gs.cubic.atoms.cell)
        nfu_t = len(gs.tetragonal.atoms) / 5
        nfu_c = len(gs.cubic.atoms) / 5
        return {
            "a": lat.a,
            "c": lat.c,
            "c_over_a": lat.c_over_a,
            "long_axis": lat.axis,
            "cubic_a": cub.a,
            "delta_e": gs.cubic.energy / nfu_c - gs.tetragonal.energy / nfu_t,
            "energy_tetragonal_per_fu": gs.tetragonal.energy / nfu_t,
            "energy_cubic_per_fu": gs.cubic.energy / nfu_c,
            "relax_tetragonal": gs.tetragonal.summary(),
            "relax_cubic": gs.cubic.summary(),
            "relax_tetragonal_free": None if gs.tetragonal_free is None else gs.tetragonal_free.summary(),
            "symmetry": gs.symmetry.to_dict(),
        }

    folder, data, hit = cache.get_or_compute("ground_state", key, compute,
                                             meta={"model": model.identity()},
                                             validate=ground_state_valid, inputs=inputs)
    data = dict(data, cache_hit=hit)
    return folder, data


def phonon_stage(model: LoadedModel, protocol: Protocol, cache: Cache, relaxed: Path,
                 write=None) -> tuple[Path, dict[str, Any], phonons.PhononResult, phonons.PhononResult]:
    """Phonons of the relaxed tetragonal cell, judged by the rule of
    :func:`pto_checks.phonons.decide_stability` (the protocol's supercell, then the escalation
    supercells only while every frequency below the threshold is interpolated).

    Each supercell is one cache entry (``band.yaml``, ``phonopy_params.yaml`` with the force
    constants, ``bands.npz``), keyed by the model, the structure, the supercell, displacement,
    path, mesh and ``symprec``.  Returns the deciding entry's folder, the decision as data, the
    deciding spectrum and the first supercell's spectrum.  ``write(line)`` reports progress.
    """
    from pto_checks.reference import tolerance

    atoms = ase.io.read(relaxed)
    p = protocol.phonon
    symprec = protocol.static.symprec if protocol.static.hold_symmetry else 1e-5
    tol = tolerance("phonon")
    structure = atoms.get_positions().round(8).tolist() + atoms.cell.array.round(8).tolist()
    folders: dict[tuple[int, int, int], tuple[Path, bool]] = {}
    spectra: dict[tuple[int, int, int], phonons.PhononResult] = {}

    def compute_one(sc: tuple[int, int, int]) -> phonons.PhononResult:
        key, inputs = phonon_key(model, protocol, atoms, sc)
        name = "x".join(map(str, sc))

        def progress(i: int, n: int) -> None:
            if write is not None and (i == n or i % 4 == 0):
                write(f"[pto-checks] {model.name} phonons {name}: {i}/{n} displaced supercells")

        def compute(folder: Path) -> dict[str, Any]:
            res = phonons.compute_phonons(atoms, model.calculator, supercell=sc, displacement=p.displacement,
                                          band_points=p.band_points, mesh=p.mesh, band_yaml=folder / "band.yaml",
                                          symprec=symprec, params_yaml=folder / "phonopy_params.yaml",
                                          progress=progress)
            res.save(folder / "bands.npz")
            return {"supercell": list(sc), "n_displacements": res.n_displacements}

        folder, _, hit = cache.get_or_compute("phonons", key, compute, meta={"model": model.identity()},
                                              validate=phonon_valid, inputs=inputs)
        res = phonons.PhononResult.load(folder / "bands.npz")
        folders[sc] = (folder, hit)
        spectra[sc] = res
        return res

    supercells = [tuple(p.supercell)] + [(n, n, n) for n in p.escalation if n > max(p.supercell)]
    def long_wavelength():
        """Relaxed-ion elastic constants of the cell (cached): the exact q -> 0 probe."""
        from pto_checks import elastic

        ekey, einputs = stage_key("elastic", model=model.identity(), structure=structure,
                                  strain=tol["elastic_strain"], fmax=tol["elastic_fmax"])

        def compute(folder: Path) -> dict[str, Any]:
            if write is not None:
                write(f"[pto-checks] {model.name}: elastic constants (12 strained cells, ions relaxed)")
            return elastic.elastic_constants(atoms, model.calculator, strain=tol["elastic_strain"],
                                             fmax=tol["elastic_fmax"]).to_dict()

        _, d, _ = cache.get_or_compute("elastic", ekey, compute, meta={"model": model.identity()}, inputs=einputs)
        import numpy as np

        c = np.array(d["c_GPa"])
        return elastic.ElasticResult(c, elastic.born_violations_tetragonal(c), d["strain"])

    decision, res = phonons.decide_stability(compute_one, supercells, tol["acoustic_gamma_thz"],
                                             tol["imaginary_threshold_thz"], tol["dip_match_grid_spacings"],
                                             long_wavelength, p.exact_probe_max_atoms)
    folder, hit = folders[decision.decided_by]
    lowest_first = decision.steps[0].lowest
    data = {
        "decision": decision.to_dict(),
        "stable": decision.stable,
        "outcome": decision.outcome.value,
        "f_min_thz": decision.steps[-1].lowest.f_thz,
        "q_min": list(decision.steps[-1].lowest.q),
        "f_min_first_thz": lowest_first.f_thz,
        "q_min_first": list(lowest_first.q),
        "supercell": list(decision.decided_by),
        "symprec": symprec,
        "n_displacements": res.n_displacements,
        "cache_hit": all(h for _, h in folders.values()),
        "folders": {"x".join(map(str, k)): str(v[0]) for k, v in folders.items()},
    }
    return folder, data, res, spectra[supercells[0]]
