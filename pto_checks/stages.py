"""Cached pipeline stages: model + protocol -> relaxed phases -> observables; -> phonons.

Each stage is keyed by the model's identity (including its weights fingerprint), the
protocol section it uses and the stage's code version (:data:`pto_checks.cache.STAGE_VERSIONS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ase.io

from pto_checks import analysis, phonons, relax
from pto_checks.cache import Cache, cache_key
from pto_checks.models import LoadedModel
from pto_checks.protocols import Protocol


def ground_state(model: LoadedModel, protocol: Protocol, cache: Cache) -> tuple[Path, dict[str, Any]]:
    """Relaxed tetragonal (P4mm held) and cubic cells and their observables (cached), and the
    unconstrained tetragonal relaxation ("does the model keep P4mm?").

    Observables: ``a``, ``c`` (Angstrom, long axis found), ``c_over_a``, ``delta_e``
    (E(cubic) - E(tetragonal), eV/f.u.), ``cubic_a``, both relaxations' summaries and
    ``symmetry`` (:class:`pto_checks.relax.SymmetryObservation`).
    Files: ``tetragonal.extxyz``, ``cubic.extxyz``, ``tetragonal_free.extxyz`` (if it finished).
    """
    key = cache_key("ground_state", model=model.identity(), protocol=protocol.static.__dict__)
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
                                             meta={"model": model.identity()})
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
        key = cache_key("phonons", model=model.identity(), structure=structure, supercell=list(sc),
                        displacement=p.displacement, band_points=p.band_points, mesh=list(p.mesh),
                        symprec=symprec)
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

        folder, _, hit = cache.get_or_compute("phonons", key, compute, meta={"model": model.identity()})
        try:
            res = phonons.PhononResult.load(folder / "bands.npz")
        except (OSError, KeyError, ValueError) as exc:
            raise RuntimeError(f"corrupt phonon cache entry {folder} ({exc}); rerun with --recompute") from exc
        folders[sc] = (folder, hit)
        spectra[sc] = res
        return res

    supercells = [tuple(p.supercell)] + [(n, n, n) for n in p.escalation if n > max(p.supercell)]
    decision, res = phonons.decide_stability(compute_one, supercells, tol["acoustic_gamma_thz"],
                                             tol["imaginary_threshold_thz"])
    folder, hit = folders[decision.decided_by]
    lowest_first = decision.steps[0].lowest
    data = {
        "decision": decision.to_dict(),
        "stable": decision.stable,
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


def md_tasks(protocol: Protocol, ensemble: str, integrator: str) -> list:
    """The MD tasks of one sweep (one per temperature)."""
    from pto_checks.md import MDTask

    p = protocol.md
    a, c = (p.start_a, p.start_c) if ensemble == "npt" else (p.nvt_a, p.nvt_c)
    return [MDTask(ensemble, integrator, float(t), p.supercell, a, c, p.steps, p.timestep_fs, p.seed,
                   p.ttime_fs, p.pfactor_ase, p.mtk_tdamp_fs, p.mtk_pdamp_fs, p.friction_per_fs,
                   p.sample_every, p.trajectory_every, p.checkpoint_every)
            for t in p.temperatures_K]


def md_sweep(model: LoadedModel, protocol: Protocol, cache: Cache, ensemble: str, integrator: str,
             engine: str = "ase", progress: bool = True, write=None,
             together: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """Run (or read from the cache) one temperature sweep; return the per-temperature rows, each
    with its phase (classified on reading, from the thresholds in reference_data).

    Each temperature is one cache entry keyed by the model fingerprint, the task (ensemble,
    integrator, temperature, cell, steps, seed, ...), the engine and the stage version; its
    folder holds ``samples.csv``, ``trajectory.extxyz`` (thinned) and ``checkpoint.pkl``.
    A temperature that another process (an xdist worker) is running is passed over and read
    once that process has finished it, so workers share a sweep instead of queueing on it.

    With ``engine="batched"`` every pending temperature of this sweep, and of the sweeps named
    in ``together`` (``(ensemble, integrator)`` pairs, e.g. the NVT sweep), runs as one batch;
    those land in the cache and are read from it when their own sweep is asked for.
    """
    from pto_checks.reference import load_reference

    tol = load_reference()["tolerances"]
    tasks = md_tasks(protocol, ensemble, integrator)
    computed: set[str] = set()
    if engine == "batched":
        extra = [t for e, i in together if (e, i) != (ensemble, integrator) for t in md_tasks(protocol, e, i)]
        computed = _md_batch(model, protocol, cache, tasks + extra, tol, progress, write)
    done: dict[int, tuple[dict[str, Any], Path, bool]] = {}
    pending = list(range(len(tasks)))
    while pending:
        progressed = False
        for i in list(pending):
            out = _md_temperature(model, protocol, cache, engine, tasks[i], tol, progress, write, blocking=False)
            if out is not None:
                done[i] = out
                pending.remove(i)
                progressed = True
        if pending and not progressed:  # all busy elsewhere: wait for the first one
            i = pending.pop(0)
            done[i] = _md_temperature(model, protocol, cache, engine, tasks[i], tol, progress, write, blocking=True)
    rows = []
    for i in range(len(tasks)):
        row, folder, hit = done[i]
        hit = hit and folder.name not in computed  # computed by this call's batch, then read back
        phase = analysis.classify_phase(row, ensemble, tol["phase"], tol["melting"])
        rows.append(dict(row, phase=phase, cache_hit=hit, folder=str(folder)))
    return rows


def _md_key(model: LoadedModel, task, engine: str) -> str:
    return cache_key("md", model=model.identity(), task=task.to_dict(), engine=engine)


def _md_finish(folder: Path, res: dict[str, Any], task, protocol: Protocol) -> dict[str, Any]:
    """Write one temperature's ``samples.csv`` and ``trajectory.extxyz``; return its summary row."""
    import csv

    from ase import Atoms

    if res["samples"]:
        with (folder / "samples.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(res["samples"][0]))
            w.writeheader()
            w.writerows(res["samples"])
    frames = [Atoms(f["numbers"], positions=f["positions"], cell=f["cell"], pbc=True) for f in res["frames"]]
    if frames:
        ase.io.write(folder / "trajectory.extxyz", frames)
    row = analysis.summarize_run(res["samples"], res["failure"], task.temperature_K,
                                 protocol.md.production_fraction)
    row["task"] = task.to_dict()
    return row


def _md_batch(model: LoadedModel, protocol: Protocol, cache: Cache, tasks: list, tol: dict[str, Any],
              progress: bool, write) -> set[str]:
    """Run every task not yet cached (and not held by another process) as one batch; return the
    keys it computed."""
    import contextlib

    from pto_checks import md
    from pto_checks.md_batched import BatchedEngine

    with contextlib.ExitStack() as stack:
        claimed = []
        for t in tasks:
            claim = stack.enter_context(cache.claim("md", _md_key(model, t, "batched"), resumable=True,
                                                    blocking=False))
            if claim is not None and not claim.hit:
                claimed.append((t, claim))
        if not claimed:
            return set()
        prog = md.Progress(f"{model.name}", 0, enabled=progress, write=write)
        results = BatchedEngine().run_many([t for t, _ in claimed], model, [c.work for _, c in claimed],
                                           progress=prog, limits=tol["melting"])
        for (t, claim), res in zip(claimed, results, strict=True):
            claim.commit(_md_finish(claim.work, res, t, protocol), {"model": model.identity()})
    return {claim.folder.name for _, claim in claimed}


def _md_temperature(model: LoadedModel, protocol: Protocol, cache: Cache, engine: str, task, tol: dict[str, Any],
                    progress: bool, write, blocking: bool) -> tuple[dict[str, Any], Path, bool] | None:
    """One temperature of a sweep: (row, folder, cache hit); None when another process holds it
    and ``blocking`` is False."""
    from pto_checks import md

    def compute(folder: Path) -> dict[str, Any]:
        label = f"{model.name} {task.ensemble}/{task.integrator} {task.temperature_K:.0f} K"
        eng = md.engine(engine)
        calc = model if engine == "batched" else model.calculator
        res = eng.run(task, calc, folder, md.Progress(label, task.steps, enabled=progress, write=write),
                      tol["melting"])
        return _md_finish(folder, res, task, protocol)

    got = cache.get_or_compute("md", _md_key(model, task, engine), compute, meta={"model": model.identity()},
                               resumable=True, blocking=blocking)
    if got is None:
        return None
    folder, row, hit = got
    return row, folder, hit
