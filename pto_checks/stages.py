"""Cached pipeline stages: model + protocol -> relaxed phases -> observables; -> phonons.

Each stage is keyed by the model's identity (including its weights fingerprint), the
protocol fields that change its result (declared on the protocol dataclasses:
:func:`pto_checks.protocols.key_parts`) and the stage's code version
(:data:`pto_checks.cache.STAGE_VERSIONS`).  Every cache read is validated by the stage's
``*_valid(folder, data)`` hook; an entry that fails is moved aside and recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ase.io
import numpy as np

from pto_checks import analysis, phonons, relax
from pto_checks.cache import Cache, CorruptEntry, cache_key, check_file
from pto_checks.models import LoadedModel
from pto_checks.protocols import Protocol, key_parts


def stage_key(stage: str, **inputs: Any) -> tuple[str, dict[str, Any]]:
    """(cache key, inputs) of ``stage``: the inputs are stored in the entry and compared on reading."""
    return cache_key(stage, **inputs), inputs


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


def md_key(model: LoadedModel, task, engine: str, protocol: Protocol) -> tuple[str, dict[str, Any]]:
    """(cache key, inputs) of one MD run: the model, the task, the engine and every MD protocol field
    declared to change a run (:func:`~pto_checks.protocols.key_parts`; ``production_fraction`` is
    not one: :func:`md_row` recomputes the averages from the stored samples on every read)."""
    return stage_key("md", model=model.identity(), task=task.to_dict(), engine=engine,
                     protocol=key_parts(protocol.md, "md"))


def read_samples(path: Path) -> list[dict[str, Any]]:
    """``samples.csv`` back as the engine's sample dicts (``step`` int, the rest float; exact round trip)."""
    import csv

    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: (int(v) if k == "step" else float(v)) for k, v in r.items()} for r in rows]


def md_valid(folder: Path, data: dict[str, Any]) -> None:
    """Validator of an MD entry: ``samples.csv`` parses and holds the number of samples recorded."""
    n = data.get("n_samples_stored")
    if not isinstance(n, int):
        raise CorruptEntry(folder / "meta.json", "'n_samples_stored' missing")
    if n:
        got = check_file(folder, "samples.csv", read_samples)
        if len(got) != n:
            raise CorruptEntry(folder / "samples.csv", f"{len(got)} samples, {n} recorded (truncated?)")


def md_row(folder: Path, data: dict[str, Any], task, protocol: Protocol) -> dict[str, Any]:
    """One temperature's summary row, averaged now from the stored ``samples.csv`` with this
    protocol's ``production_fraction`` (so that field needs no new MD and is not in the key)."""
    samples = read_samples(folder / "samples.csv") if data["n_samples_stored"] else []
    row = analysis.summarize_run(samples, data["failure"], task.temperature_K, protocol.md.production_fraction)
    row["task"] = task.to_dict()
    return row


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
    row["n_samples_stored"] = len(res["samples"])  # md_row recomputes the averages from samples.csv
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
            key, inputs = md_key(model, t, "batched", protocol)
            claim = stack.enter_context(cache.claim("md", key, resumable=True, blocking=False,
                                                    validate=md_valid, inputs=inputs))
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

    key, inputs = md_key(model, task, engine, protocol)
    got = cache.get_or_compute("md", key, compute, meta={"model": model.identity()},
                               resumable=True, blocking=blocking, validate=md_valid, inputs=inputs)
    if got is None:
        return None
    folder, data, hit = got
    return md_row(folder, data, task, protocol), folder, hit
