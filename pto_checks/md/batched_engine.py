"""Batched MD engine: every pending temperature (and both ensembles) of the sweeps a session asks
for advances together, one model call per step for the whole batch.

Positions, momenta, cells and thermostat/barostat state of all replicas are float64 tensors on
the model's device; the integrators are batched ports of ASE's (:mod:`pto_checks.md.integrators`),
the model call a :class:`~pto_checks.models.batched.BatchedPotential` (each family adapter owns
its device-side interface).  From the same start the two engines simulate the same dynamics and
differ only by round-off (and the model's own batch-size dependence), which chaos amplifies
over picoseconds: long runs agree in distribution.

TorchSim 0.3.0's NPT integrators were considered and not used: they scale the cell
isotropically only, and the PTO transition is c/a -> 1.

Checkpoints: one ``checkpoint.npz`` per replica (plain data, no pickle) (its integrator state as numpy arrays and its
generator state, written by :class:`~pto_checks.md.observe.Recorder`), so a killed batch resumes
each temperature exactly where it stopped, whatever it is batched with next time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from pto_checks.md.integrators import BATCHED, make_integrator
from pto_checks.md.observe import Progress, ProgressFn, Recorder, stderr_line
from pto_checks.md.task import MDTask, start_atoms


class BatchedEngine:
    """MD engine advancing many replicas together (see module docstring).

    ``potential_factory(model, numbers, masses, device)`` builds the batched potential;
    by default :func:`pto_checks.models.batched.batched_potential` (the family adapter's
    device-side interface, or the calculator loop).
    """

    name = "batched"

    def __init__(self, potential_factory: Callable[..., Any] | None = None, max_replicas: int | None = None):
        self.potential_factory = potential_factory
        self.max_replicas = max_replicas  #: replicas per model call (None: all; halves itself on OOM)

    @staticmethod
    def supports(task: MDTask) -> bool:
        return task.sweep in BATCHED

    def potential(self, model: Any, numbers: np.ndarray, masses: np.ndarray, device: str):
        from pto_checks.models import batched

        if self.potential_factory is not None:
            return self.potential_factory(model, numbers, masses, device)
        return batched.batched_potential(model, numbers, masses, device)

    def run(self, task: MDTask, model: Any, workdir: Path, progress: ProgressFn | None = None,
            limits: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.run_many([task], model, [workdir], progress=progress, limits=limits)[0]

    def run_many(self, tasks: Sequence[MDTask], model: Any, workdirs: Sequence[Path],
                 progress: ProgressFn | None = None, limits: dict[str, Any] | None = None
                 ) -> list[dict[str, Any]]:
        """Run (or resume) all ``tasks`` together with ``model`` (a LoadedModel, or an ASE
        calculator: then the calculator loop); one result per task, as ``ASEEngine.run``.

        Tasks must share the supercell, timestep, number of steps and sampling; replicas that were
        checkpointed at different steps are run as separate batches.
        """
        from pto_checks.reference import tolerance

        limits = limits or tolerance("melting")
        for t in tasks:
            if not self.supports(t):
                raise ValueError(
                    f"the batched engine runs NPT with the melchionna integrator and NVT with langevin; "
                    f"{t.ensemble.value}/{t.integrator.value} needs --engine ase")
        if len({batch_key(t) for t in tasks}) > 1:
            raise ValueError("a batch must share supercell, timestep, steps and sampling")
        device = getattr(model, "device", None) or "cpu"
        replicas = [_Replica(t, w) for t, w in zip(tasks, workdirs, strict=True)]
        by_step: dict[int, list[_Replica]] = {}
        for r in replicas:
            if not r.rec.done:
                by_step.setdefault(r.rec.step, []).append(r)
        pot = None
        for group in by_step.values():
            if pot is None:
                atoms = group[0].atoms
                pot = ChunkedCall(self.potential(model, atoms.numbers, atoms.get_masses(), device),
                                  self.max_replicas or cpu_replica_cap(model, len(atoms), device, len(replicas)))
            self._run_batch(group, pot, torch.device(pot.device), limits, progress)
        for r in replicas:
            r.rec.checkpoint()
        return [r.rec.result() for r in replicas]

    def _run_batch(self, reps: list[_Replica], pot, device: torch.device, limits: dict[str, Any],
                   progress) -> None:
        task0 = reps[0].task
        m = torch.as_tensor(reps[0].atoms.get_masses(), dtype=torch.float64, device=device)[:, None]
        groups: list[tuple[Any, list[_Replica]]] = []
        for sweep in BATCHED:
            members = [r for r in reps if r.task.sweep == sweep]
            if members:
                groups.append((make_integrator([r.task for r in members], m, device), members))
        # start every group: fresh replicas from their initial state, the others from checkpoints
        for integ, members in groups:
            if members[0].rec.state is not None:
                integ.load([r.rec.state[integ.kind] for r in members], device)
                continue
            pos = torch.as_tensor(np.stack([r.atoms.positions for r in members]), device=device)
            mom = torch.as_tensor(np.stack([r.atoms.get_momenta() for r in members]), device=device)
            cel = torch.as_tensor(np.stack([r.atoms.cell.array for r in members]), device=device)
            e, f, s = pot(pos, cel)
            for k, r in enumerate(members):
                r.observe(pos[k], mom[k], cel[k], e[k], f[k], 0, limits, s[k])
            integ.start(pos, mom, cel, f, s)
        groups = _drop_failed(groups)
        step = reps[0].rec.step
        total = task0.steps
        label = (f"{'+'.join(sorted({r.task.ensemble.value for r in reps}))} x{len(reps)} replicas "
                 f"(batched, {pot.name})")
        prog = progress.relabel(label, total) if isinstance(progress, Progress) else progress
        t0 = time.perf_counter()
        while groups and step < total:
            n = min(task0.sample_every, total - step)
            for i in range(n):
                new = [integ.advance() for integ, _ in groups]
                pos = torch.cat([p for p, _ in new])
                cel = torch.cat([c for _, c in new])
                try:
                    e, f, s = pot(pos, cel)
                except Exception as exc:  # find the replica(s) the model fails on; the others go on
                    groups = _fail_culprits(groups, pot, pos, cel, step + i + 1, exc)
                    for r in reps:
                        if r.rec.failure is not None and r.rec.state is None:
                            r.rec.checkpoint()
                    if not groups:
                        break
                    pos = torch.cat([integ.positions() for integ, _ in groups])
                    cel = torch.cat([integ.cells() for integ, _ in groups])
                    e, f, s = pot(pos, cel)
                k0 = 0
                for integ, members in groups:
                    k1 = k0 + len(members)
                    integ.finish(f[k0:k1], s[k0:k1])
                    k0 = k1
            if not groups:
                break
            step += n
            k0 = 0
            for integ, members in groups:
                for k, r in enumerate(members):
                    r.observe(integ.positions()[k], integ.momenta()[k], integ.cells()[k], e[k0 + k], f[k0 + k],
                              step, limits, s[k0 + k])
                    if step % task0.checkpoint_every == 0 or step >= total or r.rec.failure is not None:
                        r.rec.checkpoint({integ.kind: integ.export(k)})
                k0 += len(members)
            groups = _drop_failed(groups)
            live = [r for _, ms in groups for r in ms]
            if live and prog is not None:
                prog(step, live[0].rec.samples[-1], step >= total)
        self.last_wall_s = time.perf_counter() - t0


def batch_key(task: MDTask) -> tuple:
    """What the tasks of one batch must share."""
    return (task.supercell, task.timestep_fs, task.steps, task.sample_every, task.trajectory_every,
            task.checkpoint_every)


#: share of the memory left that a batch's MD may take on a CPU (the rest: the model, other processes)
CPU_MEMORY_SHARE = 0.5


def cpu_replica_cap(model: Any, n_atoms: int, device: Any, replicas: int) -> int | None:
    """Replicas per model call on a CPU: as many as fit :data:`CPU_MEMORY_SHARE` of the memory
    left (:func:`pto_checks.memory.available_bytes`) at the measured memory per replica
    (:func:`pto_checks.md.cpu_table.replica_mb`); None (all at once) on a GPU, where
    :class:`ChunkedCall` halves the chunk on an out-of-memory error instead, or when the memory
    left is unknown."""
    if not str(device).startswith("cpu"):
        return None
    from pto_checks import memory
    from pto_checks.md import cpu_table

    available, how = memory.available_bytes()
    if available is None:
        return None
    family = getattr(getattr(model, "spec", None), "family", "")
    per = cpu_table.replica_mb(family, n_atoms)
    cap = max(1, int(CPU_MEMORY_SHARE * available / (per * 2**20)))
    if cap < replicas:
        stderr_line(f"[pto-checks] batched engine on cpu: {cap} of {replicas} replicas per model call "
                    f"({available / 2**30:.1f} GB left ({how}), about {per:.0f} MB per replica of "
                    f"{n_atoms} atoms measured for {family or 'this model'})")
    return cap


_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch < 2.5: only the cuda one


class ChunkedCall:
    """Call a batched potential in chunks of replicas that fit the device.

    Starts with all replicas in one call; on a CUDA out-of-memory error it halves the chunk and
    retries (and keeps the smaller size), so a batch larger than the GPU's memory still runs.
    """

    def __init__(self, pot: Any, max_replicas: int | None = None):
        self.pot = pot
        self.max_replicas = max_replicas
        self.name = pot.name
        self.device = pot.device

    def __call__(self, pos: torch.Tensor, cel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = pos.shape[0]
        while True:
            size = min(b, self.max_replicas or b)
            try:
                parts = [self.pot(pos[k:k + size], cel[k:k + size]) for k in range(0, b, size)]
            except _OOM:
                if size == 1:
                    raise
                torch.cuda.empty_cache()
                self.max_replicas = max(1, size // 2)
                stderr_line(f"[pto-checks] out of GPU memory with {size} replicas per model call; "
                                    f"retrying with {self.max_replicas}")
                continue
            if len(parts) == 1:
                return parts[0]
            return tuple(torch.cat([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def _fail_culprits(groups: list[tuple[Any, list[_Replica]]], pot: Any, pos: torch.Tensor, cel: torch.Tensor,
                   step: int, exc: Exception) -> list[tuple[Any, list[_Replica]]]:
    """After a failed batched call: call each replica alone, mark those the model raises on as
    failed at ``step`` (as the ASE engine records a raising model), drop them.  Re-raises when
    every replica alone is fine (the failure was the batch's, e.g. memory)."""
    members = [r for _, ms in groups for r in ms]
    bad = 0
    for k, r in enumerate(members):
        try:
            pot(pos[k:k + 1], cel[k:k + 1])
        except Exception as one:
            r.rec.failure = {"step": step, "reason": f"integrator/model raised {type(one).__name__}: {one}"}
            bad += 1
    if not bad:
        raise exc
    return _drop_failed(groups)


def _drop_failed(groups: list[tuple[Any, list[_Replica]]]) -> list[tuple[Any, list[_Replica]]]:
    out = []
    for integ, members in groups:
        ok = [k for k, r in enumerate(members) if r.rec.failure is None]
        if len(ok) < len(members):
            if not ok:
                continue
            integ.keep(torch.tensor(ok, device=integ.m.device))
            members = [members[k] for k in ok]
        out.append((integ, members))
    return out


class _Replica:
    """One task of a batch: its recorder and an ASE Atoms to observe frames through."""

    def __init__(self, task: MDTask, workdir: Path):
        self.task = task
        self.rec = Recorder(task, workdir, BatchedEngine.name)
        self.rec.resume()
        self.atoms = start_atoms(task, workdir)
        if self.rec.v0 is None:
            self.rec.v0 = self.atoms.get_volume() / (len(self.atoms) / 5)

    def observe(self, pos: torch.Tensor, mom: torch.Tensor, cell: torch.Tensor, e: torch.Tensor,
                f: torch.Tensor, step: int, limits: dict[str, Any], stress: torch.Tensor | None = None) -> None:
        """Sample this replica's current frame (and check it for a blow-up), as the ASE engine does;
        ``stress`` (3x3, eV/A^3, ASE's sign) goes into the recorded frames as the ASE engine's does."""
        from ase.stress import full_3x3_to_voigt_6_stress

        atoms = self.atoms
        atoms.cell = cell.cpu().numpy()
        atoms.positions = pos.cpu().numpy()
        atoms.set_momenta(mom.cpu().numpy())
        extra = {} if stress is None else {"stress": full_3x3_to_voigt_6_stress(stress.detach().cpu().numpy())}
        atoms.calc = SinglePointCalculator(atoms, energy=float(e), forces=f.cpu().numpy(), **extra)
        self.rec.observe(atoms, step, limits)
