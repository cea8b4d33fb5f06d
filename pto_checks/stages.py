"""Cached pipeline stages: model + protocol -> relaxed phases -> observables; -> phonons; the MD
sweeps (:func:`pto_checks.md.sweep.md_sweep`, re-exported here).

Each stage is keyed by the model's identity (including its weights fingerprint), the
protocol section it uses and the stage's code version (:data:`pto_checks.cache.STAGE_VERSIONS`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ase.io

from pto_checks import analysis, phonons, relax
from pto_checks.cache import Cache, cache_key
from pto_checks.md.sweep import md_sweep
from pto_checks.md.task import sweep_tasks as md_tasks
from pto_checks.models import LoadedModel
from pto_checks.protocols import Protocol

__all__ = ["ground_state", "md_sweep", "md_tasks", "phonon_stage"]


def ground_state(model: LoadedModel, protocol: Protocol, cache: Cache) -> tuple[Path, dict[str, Any]]:
    """Relaxed tetragonal and cubic cells and their observables (cached).

    Observables: ``a``, ``c`` (Angstrom, long axis found), ``c_over_a``, ``delta_e``
    (E(cubic) - E(tetragonal), eV/f.u.), ``cubic_a`` and both relaxations' summaries.
    Files: ``tetragonal.extxyz``, ``cubic.extxyz``.
    """
    key = cache_key("ground_state", model=model.identity(), protocol=protocol.static.__dict__)

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
                                             meta={"model": model.identity()})
    data = dict(data, cache_hit=hit)
    return folder, data


def phonon_stage(model: LoadedModel, protocol: Protocol, cache: Cache,
                 relaxed: Path) -> tuple[Path, dict[str, Any], phonons.PhononResult | None]:
    """Phonons of the relaxed tetragonal cell (cached): band.yaml, bands.npz and the minimum mode."""
    import numpy as np

    atoms = ase.io.read(relaxed)
    p = protocol.phonon
    key = cache_key("phonons", model=model.identity(), protocol=p.__dict__,
                    structure=atoms.get_positions().round(8).tolist() + atoms.cell.array.round(8).tolist())

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

    folder, data, hit = cache.get_or_compute("phonons", key, compute, meta={"model": model.identity()})
    z = np.load(folder / "bands.npz")
    res = phonons.PhononResult(z["band_q"], z["band_freq"], z["band_distance"],
                               list(z["label_positions"]), [str(s) for s in z["labels"]],
                               z["mesh_q"], z["mesh_freq"], int(data["n_displacements"]))
    return folder, dict(data, cache_hit=hit), res
