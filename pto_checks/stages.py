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
        if not isinstance(data.get(k), (int, float)):
            raise CorruptEntry(folder / "meta.json", f"{k!r} missing or not a number")


def phonon_key(model: LoadedModel, protocol: Protocol, atoms) -> tuple[str, dict[str, Any]]:
    return stage_key("phonons", model=model.identity(), protocol=key_parts(protocol.phonon, "phonons"),
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


def phonon_valid(folder: Path, data: dict[str, Any]) -> None:
    """Validator of a phonon entry: ``bands.npz`` holds every array (no pickles), finite; band.yaml exists."""
    check_file(folder, "bands.npz", _read_bands)
    check_file(folder, "band.yaml", _read_band_yaml)
    if not isinstance(data.get("f_min_thz"), (int, float)):
        raise CorruptEntry(folder / "meta.json", "'f_min_thz' missing or not a number")

__all__ = ["ground_state", "md_key", "md_sweep", "md_tasks", "phonon_stage"]


def ground_state(model: LoadedModel, protocol: Protocol, cache: Cache) -> tuple[Path, dict[str, Any]]:
    """Relaxed tetragonal and cubic cells and their observables (cached).

    Observables: ``a``, ``c`` (Angstrom, long axis found), ``c_over_a``, ``delta_e``
    (E(cubic) - E(tetragonal), eV/f.u.), ``cubic_a`` and both relaxations' summaries.
    Files: ``tetragonal.extxyz``, ``cubic.extxyz``.
    """
    key, inputs = ground_state_key(model, protocol)

    def compute(folder: Path) -> dict[str, Any]:
        gs = relax.relax_phases(model.calculator, fmax=protocol.static.fmax,
                                max_steps=protocol.static.max_steps)
        ase.io.write(folder / "tetragonal.extxyz", gs.tetragonal.atoms)
        ase.io.write(folder / "cubic.extxyz", gs.cubic.atoms)
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
        }

    folder, data, hit = cache.get_or_compute("ground_state", key, compute,
                                             meta={"model": model.identity()},
                                             validate=ground_state_valid, inputs=inputs)
    data = dict(data, cache_hit=hit)
    return folder, data


def phonon_stage(model: LoadedModel, protocol: Protocol, cache: Cache,
                 relaxed: Path) -> tuple[Path, dict[str, Any], phonons.PhononResult | None]:
    """Phonons of the relaxed tetragonal cell (cached): band.yaml, bands.npz and the minimum mode."""
    atoms = ase.io.read(relaxed)
    p = protocol.phonon
    key, inputs = phonon_key(model, protocol, atoms)

    def compute(folder: Path) -> dict[str, Any]:
        res = phonons.compute_phonons(atoms, model.calculator, supercell=p.supercell,
                                      displacement=p.displacement, band_points=p.band_points,
                                      mesh=p.mesh, band_yaml=folder / "band.yaml")
        np.savez(folder / "bands.npz", band_q=res.band_q, band_freq=res.band_freq,
                 band_distance=res.band_distance, label_positions=res.label_positions,
                 labels=res.labels, mesh_q=res.mesh_q, mesh_freq=res.mesh_freq)
        q, f = res.all_q_and_freq()
        f_all, q_all, f_far, q_far = phonons.most_negative_mode(q, f, p.supercell)
        return {"f_min_all_thz": f_all, "q_min_all": q_all.tolist(), "f_min_thz": f_far,
                "q_min": q_far.tolist(), "n_displacements": res.n_displacements,
                "supercell": list(p.supercell)}

    folder, data, hit = cache.get_or_compute("phonons", key, compute, meta={"model": model.identity()},
                                             validate=phonon_valid, inputs=inputs)
    z = _read_bands(folder / "bands.npz")
    res = phonons.PhononResult(z["band_q"], z["band_freq"], z["band_distance"],
                               list(z["label_positions"]), [str(s) for s in z["labels"]],
                               z["mesh_q"], z["mesh_freq"], int(data["n_displacements"]))
    return folder, dict(data, cache_hit=hit), res
