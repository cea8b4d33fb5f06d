"""Batched ports of ASE's (3.29) integrators, equation for equation, over ``b`` replicas of the
same ``n`` atoms as float64 tensors on the model's device:

* :class:`MelchionnaBatch`: ASE ``NPT``/``MelchionnaNPT`` (Nose-Hoover thermostat +
  Parrinello-Rahman-type barostat, ``ttime``, ``pfactor``, mask ``diag(1, 1, 1)``: a, b and c
  relax independently, no shear).  Deterministic: from the same initial velocities it follows
  the ASE trajectory to round-off.
* :class:`LangevinBatch`: ASE ``Langevin`` (Vanden-Eijnden & Ciccotti scheme, centre of mass
  fixed), its noise drawn from one numpy generator per replica seeded and drawn as the ASE
  engine does, so it too follows the ASE trajectory.

Each integrator has ``start`` (initial forces/stress), ``advance`` (new positions and cells
before the force call), ``finish`` (after it), ``export``/``load`` (one replica's state as numpy,
for checkpoints) and ``keep`` (drop replicas).  :func:`make_integrator` builds the one of a task.
Units: ASE's (Angstrom, eV, amu, ASE time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase import units

from pto_checks.md.task import Ensemble, Integrator, MDTask


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


#: what the batched engine integrates: the keys of this table
BATCHED: dict[tuple[Ensemble, Integrator], type] = {
    (Ensemble.NPT, Integrator.MELCHIONNA): MelchionnaBatch,
    (Ensemble.NVT, Integrator.LANGEVIN): LangevinBatch,
}


def make_integrator(tasks: Sequence[MDTask], masses: torch.Tensor, device: torch.device):
    """The batched integrator for ``tasks`` (one ensemble and integrator, shared timestep and
    coupling constants; temperatures and seeds per replica)."""
    t0 = tasks[0]
    temps = torch.tensor([t.temperature_K for t in tasks], dtype=torch.float64, device=device)
    dt = t0.timestep_fs * units.fs
    if t0.sweep == (Ensemble.NPT, Integrator.MELCHIONNA):
        return MelchionnaBatch(temps, dt, t0.ttime_fs * units.fs, t0.pfactor_ase, masses,
                               torch.eye(3, dtype=torch.float64, device=device))
    if t0.sweep == (Ensemble.NVT, Integrator.LANGEVIN):
        return LangevinBatch(temps, dt, t0.friction_per_fs / units.fs, masses, [t.seed + 1 for t in tasks], device)
    raise ValueError(f"the batched engine has no {t0.ensemble.value}/{t0.integrator.value} integrator")
