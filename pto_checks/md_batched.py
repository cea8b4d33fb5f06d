"""Batched MD engine: every temperature (and both ensembles) of a sweep advances together.

Positions, momenta, cells and the thermostat/barostat state of all replicas are float64
tensors on the model's device; each step makes one call of a
:class:`~pto_checks.models.batched.BatchedPotential` for the whole batch (for CHGNet, SevenNet
and MACE the graphs and neighbor lists are built on the device too).

The integrators are batched ports of the ASE (3.29) ones the reference engine uses, equation for
equation, so the two engines simulate the same dynamics (older ASE's Langevin draws its noise
differently; there the two agree in distribution only):

* :class:`MelchionnaBatch`: ASE ``NPT``/``MelchionnaNPT`` (Nose-Hoover thermostat +
  Parrinello-Rahman-type barostat, ``ttime``, ``pfactor``, mask ``diag(1, 1, 1)``: a, b and c
  relax independently, no shear).  Deterministic: from the same initial velocities it follows
  the ASE trajectory to round-off.
* :class:`LangevinBatch`: ASE ``Langevin`` (Vanden-Eijnden & Ciccotti scheme, centre of mass
  fixed), its noise drawn from one numpy generator per replica seeded and drawn as the ASE
  engine does, so it too follows the ASE trajectory (the draws cost microseconds per step).

TorchSim 0.3.0's NPT integrators were considered and not used: they scale the cell
isotropically only, and the PTO transition is c/a -> 1.

The two engines differ only by floating-point round-off (and the model's own batch-size
dependence), which chaos amplifies over picoseconds: long runs agree in distribution.

Checkpoints: one ``checkpoint.pkl`` per replica (its tensors as numpy arrays and its generator
state), so a killed batch resumes each temperature exactly where it stopped, whatever it is
batched with next time.  Units: ASE's (Angstrom, eV, amu, ASE time), fs and K at the edges.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from pto_checks import md

BATCHED_INTEGRATORS = md.BATCHED_INTEGRATORS


def _kinetic_stress(p: torch.Tensor, m: torch.Tensor, volume: torch.Tensor) -> torch.Tensor:
    """ASE's ideal-gas stress, -sum(p p^T / m) / V, as [b, 3, 3] (eV/A^3)."""
    return -torch.einsum("bni,bnj->bij", p / m, p) / volume[:, None, None]


class MelchionnaBatch:
    """ASE's Melchionna NPT for ``b`` replicas of ``n`` atoms (see ``ase.md.melchionna``)."""

    kind = "melchionna"

    def __init__(self, temperatures_K: torch.Tensor, dt: float, ttime: float, pfactor: float,
                 masses: torch.Tensor, mask: torch.Tensor):
        self.dt = dt
        self.kT = temperatures_K * units.kB  # [b]
        self.ttime, self.pfactor = ttime, pfactor
        self.m = masses  # [n, 1]
        self.mask = mask  # [3, 3]
        self.n = masses.shape[0]

    # -- helpers
    def _ekin(self, p: torch.Tensor) -> torch.Tensor:
        return 0.5 * (p * p / self.m).sum(dim=(1, 2))

    def _q_future(self, force: torch.Tensor) -> None:
        dt = self.dt
        eye = torch.eye(3, dtype=force.dtype, device=force.device)
        alpha = (dt * dt) * (force / self.m) @ self.inv_h
        beta = dt * self.h @ (self.eta + 0.5 * self.zeta[:, None, None] * eye) @ self.inv_h
        inv_b = torch.linalg.inv(beta + eye)
        self.q_future = (2 * self.q + self.q_past @ (beta - eye) + alpha) @ inv_b

    def _tri(self, s: torch.Tensor) -> torch.Tensor:
        return self.mask * torch.triu(s)  # cells are upper triangular (ASE's _maketriangular)

    # -- protocol
    def start(self, positions: torch.Tensor, momenta: torch.Tensor, cells: torch.Tensor,
              forces: torch.Tensor, stress: torch.Tensor) -> None:
        """ASE ``initialize()``: a backwards step from the initial state (forces and virial stress
        at the initial positions)."""
        dt = self.dt
        b = positions.shape[0]
        self.h = cells.clone()
        self.inv_h = torch.linalg.inv(self.h)
        vol = torch.linalg.det(self.h)
        self.tfact = 2.0 / (3 * self.n * self.kT * self.ttime**2)
        self.pfact = 1.0 / (self.pfactor * vol)
        self.desired_ekin = 1.5 * (self.n - 1) * self.kT
        self.eta = torch.zeros_like(self.h)
        self.zeta = torch.zeros(b, dtype=cells.dtype, device=cells.device)
        self.p = momenta.clone()
        self.q = positions @ self.inv_h - 0.5
        self.h_past = self.h - dt * self.h @ self.eta
        full = stress + _kinetic_stress(self.p, self.m, vol)
        deltaeta = -dt * (self.pfact * vol)[:, None, None] * full
        self.eta_past = self.eta - self._tri(deltaeta)
        self.zeta_past = self.zeta - dt * self.tfact * (self._ekin(self.p) - self.desired_ekin)
        p0 = self.p
        p = p0.clone()
        for _ in range(2):
            self.q_past = self.q - dt * (p / self.m) @ self.inv_h
            self._q_future(forces)
            p = ((self.q_future - self.q_past) @ (self.h / (2 * dt))) * self.m
            p = (p0 - p) + p0
        self.stress = stress

    def advance(self) -> tuple[torch.Tensor, torch.Tensor]:
        """First half of ASE's ``step()``: new cell and positions (before the force call)."""
        dt = self.dt
        h_future = self.h_past + 2 * dt * self.h @ self.eta
        vol = torch.linalg.det(self.h)
        full = self.stress + _kinetic_stress(self.p, self.m, vol)
        deltaeta = -2 * dt * (self.pfact * vol)[:, None, None] * full
        eta_future = self.eta_past + self._tri(deltaeta)
        zeta_future = self.zeta_past + 2 * dt * self.tfact * (self._ekin(self.p) - self.desired_ekin)
        self.h_past, self.h = self.h, h_future
        self.inv_h = torch.linalg.inv(self.h)
        self.q_past, self.q = self.q, self.q_future
        self.eta_past, self.eta = self.eta, eta_future
        self.zeta_past, self.zeta = self.zeta, zeta_future
        return (self.q + 0.5) @ self.h, self.h

    def finish(self, forces: torch.Tensor, stress: torch.Tensor) -> None:
        """Second half of ``step()``: future positions and the momenta."""
        self._q_future(forces)
        self.p = ((self.q_future - self.q_past) @ (self.h / (2 * self.dt))) * self.m
        self.stress = stress

    def positions(self) -> torch.Tensor:
        return (self.q + 0.5) @ self.h

    def cells(self) -> torch.Tensor:
        return self.h

    def momenta(self) -> torch.Tensor:
        return self.p

    _STATE = ("h", "h_past", "inv_h", "eta", "eta_past", "zeta", "zeta_past", "p", "q", "q_past",
              "q_future", "stress", "tfact", "pfact", "desired_ekin", "kT")

    def export(self, k: int) -> dict[str, Any]:
        return {name: getattr(self, name)[k].cpu().numpy() for name in self._STATE}

    def load(self, states: list[dict[str, Any]], device: torch.device) -> None:
        for name in self._STATE:
            setattr(self, name, torch.as_tensor(np.stack([s[name] for s in states]), device=device))

    def keep(self, idx: torch.Tensor) -> None:
        for name in self._STATE:
            setattr(self, name, getattr(self, name)[idx])


class LangevinBatch:
    """ASE's Langevin (fixed centre of mass) for ``b`` replicas; noise from per-replica generators."""

    kind = "langevin"

    def __init__(self, temperatures_K: torch.Tensor, dt: float, friction: float, masses: torch.Tensor,
                 seeds: Sequence[int], device: torch.device):
        self.dt, self.fr = dt, friction
        self.m = masses  # [n, 1]
        self.n = masses.shape[0]
        self.kT = temperatures_K * units.kB
        # numpy generators seeded as the ASE engine seeds its Langevin: the same noise, step by step
        self.gens = [np.random.default_rng(int(s)) for s in seeds]
        self.device = device
        self._coefficients()

    def _coefficients(self) -> None:
        dt, fr = self.dt, self.fr
        sigma = torch.sqrt(2 * self.kT[:, None, None] * fr / self.m)  # [b, n, 1]
        self.c1 = dt / 2.0 - dt * dt * fr / 8.0
        self.c2 = dt * fr / 2 - dt * dt * fr * fr / 8.0
        self.c3 = np.sqrt(dt) * sigma / 2.0 - dt**1.5 * fr * sigma / 8.0
        self.c5 = dt**1.5 * sigma / (2 * np.sqrt(3))
        self.c4 = fr / 2.0 * self.c5

    def start(self, positions: torch.Tensor, momenta: torch.Tensor, cells: torch.Tensor,
              forces: torch.Tensor, stress: torch.Tensor) -> None:
        self.x, self.v, self.h, self.f = positions.clone(), momenta / self.m, cells.clone(), forces

    def _noise(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per replica, ASE's draws in ASE's order: xi then eta, each (n, 3) standard normal."""
        draws = np.stack([np.stack([g.standard_normal((self.n, 3)), g.standard_normal((self.n, 3))])
                          for g in self.gens])  # [b, 2, n, 3]; a few microseconds next to a model call
        t = torch.as_tensor(draws, device=self.x.device)
        return t[:, 0], t[:, 1]

    def advance(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n
        xi, eta = self._noise()
        rnd_pos = self.c5 * eta
        rnd_vel = self.c3 * xi - self.c4 * eta
        factor = np.sqrt(n / (n - 1.0))
        rnd_pos = (rnd_pos - rnd_pos.sum(dim=1, keepdim=True) / n) * factor
        rnd_vel = (rnd_vel - (rnd_vel * self.m).sum(dim=1, keepdim=True) / (self.m * n)) * factor
        self.rnd_vel = rnd_vel
        self.v = self.v + (self.c1 * self.f / self.m - self.c2 * self.v + rnd_vel)
        self.x = self.x + self.dt * self.v + rnd_pos
        return self.x, self.h

    def finish(self, forces: torch.Tensor, stress: torch.Tensor) -> None:
        self.f = forces
        self.v = self.v + (self.c1 * forces / self.m - self.c2 * self.v + self.rnd_vel)

    def positions(self) -> torch.Tensor:
        return self.x

    def cells(self) -> torch.Tensor:
        return self.h

    def momenta(self) -> torch.Tensor:
        return self.v * self.m

    _STATE = ("x", "v", "h", "f", "kT")

    def export(self, k: int) -> dict[str, Any]:
        d = {name: getattr(self, name)[k].cpu().numpy() for name in self._STATE}
        d["generator"] = self.gens[k].bit_generator.state
        return d

    def load(self, states: list[dict[str, Any]], device: torch.device) -> None:
        for name in self._STATE:
            setattr(self, name, torch.as_tensor(np.stack([s[name] for s in states]), device=device))
        for g, s in zip(self.gens, states, strict=True):
            g.bit_generator.state = s["generator"]
        self._coefficients()

    def keep(self, idx: torch.Tensor) -> None:
        for name in self._STATE:
            setattr(self, name, getattr(self, name)[idx])
        self.gens = [self.gens[int(i)] for i in idx]
        self._coefficients()


class BatchedEngine:
    """MD engine advancing many replicas together (see module docstring).

    ``potential_factory(model, numbers, masses, device)`` builds the batched potential;
    by default :func:`pto_checks.models.batched.batched_potential` (a loaded model) or the
    calculator loop (a bare ASE calculator).
    """

    name = "batched"

    def __init__(self, potential_factory: Callable[..., Any] | None = None, max_replicas: int | None = None):
        self.potential_factory = potential_factory
        self.max_replicas = max_replicas  #: replicas per model call (None: all; halves itself on OOM)

    def potential(self, model: Any, atoms: Atoms, device: str):
        from pto_checks.models import batched

        if self.potential_factory is not None:
            return self.potential_factory(model, atoms.numbers, atoms.get_masses(), device)
        if hasattr(model, "calculator"):
            return batched.batched_potential(model, atoms.numbers, atoms.get_masses(), device)
        return batched.CalculatorLoop(model, atoms.numbers, device)

    def run(self, task: md.MDTask, model: Any, workdir: Path, progress=None, limits=None) -> dict[str, Any]:
        return self.run_many([task], model, [workdir], progress=progress, limits=limits)[0]

    def run_many(self, tasks: Sequence[md.MDTask], model: Any, workdirs: Sequence[Path],
                 progress: Callable[[int, dict[str, Any], bool], None] | None = None,
                 limits: dict[str, Any] | None = None, device: str | None = None) -> list[dict[str, Any]]:
        """Run (or resume) all ``tasks`` together; one result per task, as ``ASEEngine.run``.

        Tasks must share the supercell, timestep, number of steps and sampling; replicas that were
        checkpointed at different steps are run as separate batches.
        """
        from pto_checks.reference import tolerance

        limits = limits or tolerance("melting")
        for t in tasks:
            if t.integrator not in BATCHED_INTEGRATORS.get(t.ensemble, ()):
                raise ValueError(
                    f"the batched engine runs NPT with the melchionna integrator and NVT with langevin; "
                    f"{t.ensemble}/{t.integrator} needs --engine ase")
        keys = {(t.supercell, t.timestep_fs, t.steps, t.sample_every, t.trajectory_every,
                 t.checkpoint_every) for t in tasks}
        if len(keys) > 1:
            raise ValueError("a batch must share supercell, timestep, steps and sampling")
        device = device or getattr(model, "device", None) or "cpu"
        replicas = [_Replica.open(t, w) for t, w in zip(tasks, workdirs, strict=True)]
        by_step: dict[int, list[_Replica]] = {}
        for r in replicas:
            if r.failure is None and r.step < r.task.steps:
                by_step.setdefault(r.step, []).append(r)
        pot = None
        for group in by_step.values():
            if pot is None:
                pot = ChunkedCall(self.potential(model, group[0].atoms, device),
                                  self.max_replicas)
            self._run_batch(group, pot, torch.device(pot.device), limits, progress)
        for r in replicas:
            r.checkpoint()
        return [r.result() for r in replicas]

    def _run_batch(self, reps: list[_Replica], pot, device: torch.device, limits: dict[str, Any],
                   progress) -> None:
        task0 = reps[0].task
        m = torch.as_tensor(reps[0].atoms.get_masses(), dtype=torch.float64, device=device)[:, None]
        dt = task0.timestep_fs * units.fs
        groups: list[tuple[Any, list[_Replica]]] = []
        for ens in ("npt", "nvt"):
            members = [r for r in reps if r.task.ensemble == ens]
            if not members:
                continue
            temps = torch.tensor([r.task.temperature_K for r in members], dtype=torch.float64, device=device)
            if ens == "npt":
                integ = MelchionnaBatch(temps, dt, task0.ttime_fs * units.fs, task0.pfactor_ase, m,
                                        torch.eye(3, dtype=torch.float64, device=device))
            else:
                integ = LangevinBatch(temps, dt, task0.friction_per_fs / units.fs, m,
                                      [r.task.seed + 1 for r in members], device)
            groups.append((integ, members))
        # start every group: fresh replicas from their initial state, the others from checkpoints
        for integ, members in groups:
            if members[0].state is not None:
                integ.load([r.state[integ.kind] for r in members], device)
                continue
            pos = torch.as_tensor(np.stack([r.atoms.positions for r in members]), device=device)
            mom = torch.as_tensor(np.stack([r.atoms.get_momenta() for r in members]), device=device)
            cel = torch.as_tensor(np.stack([r.atoms.cell.array for r in members]), device=device)
            e, f, s = pot(pos, cel)
            for k, r in enumerate(members):
                r.observe(pos[k], mom[k], cel[k], e[k], f[k], limits)
            integ.start(pos, mom, cel, f, s)
        groups = _drop_failed(groups)
        step = reps[0].step
        total = task0.steps
        label = f"{'+'.join(sorted({r.task.ensemble for r in reps}))} x{len(reps)} replicas (batched, {pot.name})"
        if isinstance(progress, md.Progress):  # the stage's progress printer: one line for the batch
            prog = md.Progress(f"{progress.label} {label}".strip(), total, enabled=progress.enabled,
                               write=progress.write)
        else:  # None, or any callable(step, row, final) (called with the first live replica's row)
            prog = progress
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
                        if r.failure is not None and r.state is None:
                            r.checkpoint()
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
                    r.step = step
                    r.observe(integ.positions()[k], integ.momenta()[k], integ.cells()[k], e[k0 + k], f[k0 + k],
                              limits)
                    if step % task0.checkpoint_every == 0 or step >= total or r.failure is not None:
                        r.state = {integ.kind: integ.export(k)}
                        r.checkpoint()
                k0 += len(members)
            groups = _drop_failed(groups)
            live = [r for _, ms in groups for r in ms]
            if live and prog is not None:
                prog(step, live[0].samples[-1], step >= total)
        self.last_wall_s = time.perf_counter() - t0


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
                md.Progress._stderr(f"[pto-checks] out of GPU memory with {size} replicas per model call; "
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
            r.failure = {"step": step, "reason": f"integrator/model raised {type(one).__name__}: {one}"}
            bad += 1
    if not bad:
        raise exc
    return _drop_failed(groups)


def _drop_failed(groups: list[tuple[Any, list[_Replica]]]) -> list[tuple[Any, list[_Replica]]]:
    out = []
    for integ, members in groups:
        ok = [k for k, r in enumerate(members) if r.failure is None]
        if len(ok) < len(members):
            if not ok:
                continue
            integ.keep(torch.tensor(ok, device=integ.m.device))
            members = [members[k] for k in ok]
        out.append((integ, members))
    return out


class _Replica:
    """One task of a batch: its samples, frames, failure and checkpoint file."""

    def __init__(self, task: md.MDTask, workdir: Path):
        self.task, self.workdir = task, workdir
        self.ckpt = workdir / "checkpoint.pkl"
        self.step, self.samples, self.frames, self.failure = 0, [], [], None
        self.state: dict[str, Any] | None = None
        self.atoms = md.initial_atoms(task)
        self.v0 = self.atoms.get_volume() / (len(self.atoms) / 5)

    @classmethod
    def open(cls, task: md.MDTask, workdir: Path) -> _Replica:
        r = cls(task, workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        if r.ckpt.is_file():
            with r.ckpt.open("rb") as fh:
                d = pickle.load(fh)
            if d.get("engine") == "batched":
                r.step, r.samples, r.frames, r.failure = d["step"], d["samples"], d["frames"], d["failure"]
                r.state, r.v0 = d["state"], d["v0"]
        return r

    def observe(self, pos: torch.Tensor, mom: torch.Tensor, cell: torch.Tensor, e: torch.Tensor,
                f: torch.Tensor, limits: dict[str, Any]) -> None:
        """Sample this replica's current frame (and check it for a blow-up), as the ASE engine does."""
        atoms = self.atoms
        atoms.cell = cell.cpu().numpy()
        atoms.positions = pos.cpu().numpy()
        atoms.set_momenta(mom.cpu().numpy())
        atoms.calc = SinglePointCalculator(atoms, energy=float(e), forces=f.cpu().numpy())
        reason = md.blowup(atoms, self.v0, limits)
        if reason is not None:
            self.failure = {"step": self.step, "reason": reason}
            return
        row = md.sample(atoms, self.step, self.task)
        self.samples.append(row)
        if self.step > 0 and len(self.samples) % self.task.trajectory_every == 0:
            self.frames.append({"step": self.step, "numbers": atoms.numbers.copy(),
                                "positions": atoms.positions.copy(), "cell": atoms.cell.array.copy()})

    def checkpoint(self) -> None:
        md._atomic_pickle({"engine": "batched", "step": self.step, "samples": self.samples,
                           "frames": self.frames, "failure": self.failure, "state": self.state,
                           "v0": self.v0, "task": self.task.to_dict()}, self.ckpt)

    def result(self) -> dict[str, Any]:
        return {"samples": self.samples, "frames": self.frames, "failure": self.failure}
