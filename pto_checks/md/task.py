"""What one MD run is: :class:`MDTask` (ensemble, integrator, temperature, cell, steps, seed, ...)
and the choices it names as enums.  Units: K, fs, Angstrom; ``pfactor_ase`` in ASE units."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

import numpy as np
from ase import Atoms

from pto_checks import structures


class Ensemble(str, Enum):
    """Thermodynamic ensemble of a sweep."""

    NPT = "npt"
    NVT = "nvt"


class Integrator(str, Enum):
    """Integrator of a run: ``melchionna`` (ASE ``MelchionnaNPT``, the study's) or ``mtk`` (ASE
    ``MaskedMTKNPT``: a, b, c independent, no shear) for NPT; ``langevin`` (ASE ``Langevin``) for NVT."""

    MELCHIONNA = "melchionna"
    MTK = "mtk"
    LANGEVIN = "langevin"


class EngineName(str, Enum):
    """MD engine: ``ase`` (reference, one replica at a time), ``batched`` (all replicas in one
    model call per step, on the model's device), ``auto`` (chosen per task, see
    :func:`pto_checks.md.engines.choose_engine`)."""

    ASE = "ase"
    BATCHED = "batched"
    AUTO = "auto"


#: the integrators each ensemble admits
INTEGRATORS: dict[Ensemble, tuple[Integrator, ...]] = {
    Ensemble.NPT: (Integrator.MELCHIONNA, Integrator.MTK),
    Ensemble.NVT: (Integrator.LANGEVIN,),
}


def _plain(v: Any) -> Any:
    return v.value if isinstance(v, Enum) else v


@dataclass(frozen=True)
class MDTask:
    """One MD run (one temperature of one sweep).

    ``temperature_K``; lattice ``a``, ``c`` (Angstrom) of the polar starting cell;
    ``timestep_fs``; ``ttime_fs`` and ``pfactor_ase`` (Melchionna); ``mtk_tdamp_fs``,
    ``mtk_pdamp_fs`` (MTK); ``friction_per_fs`` (Langevin); ``sample_every`` (steps),
    ``trajectory_every`` (samples), ``checkpoint_every`` (steps).
    """

    ensemble: Ensemble
    integrator: Integrator
    temperature_K: float
    supercell: int
    a: float
    c: float
    steps: int
    timestep_fs: float
    seed: int
    ttime_fs: float
    pfactor_ase: float
    mtk_tdamp_fs: float
    mtk_pdamp_fs: float
    friction_per_fs: float
    sample_every: int
    trajectory_every: int
    checkpoint_every: int

    def __post_init__(self) -> None:
        ens, integ = Ensemble(self.ensemble), Integrator(self.integrator)
        if integ not in INTEGRATORS[ens]:
            raise ValueError(f"unknown integrator {integ.value!r} for {ens.value}; "
                             f"known: {', '.join(i.value for i in INTEGRATORS[ens])}")
        object.__setattr__(self, "ensemble", ens)
        object.__setattr__(self, "integrator", integ)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (enums as their strings: the cache key and checkpoints use it)."""
        return {k: _plain(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MDTask:
        return cls(**{f.name: d[f.name] for f in fields(cls)})

    @property
    def reps(self) -> tuple[int, int, int]:
        return (self.supercell,) * 3

    @property
    def sweep(self) -> tuple[Ensemble, Integrator]:
        return self.ensemble, self.integrator

    def label(self) -> str:
        return f"{self.ensemble.value}/{self.integrator.value} {self.temperature_K:.0f} K"


def initial_atoms(task: MDTask) -> Atoms:
    """Polar tetragonal supercell at (a, c) with Maxwell-Boltzmann velocities (seeded)."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    atoms = structures.supercell(structures.tetragonal(a=task.a, c=task.c), task.supercell)
    rng = np.random.default_rng(task.seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=task.temperature_K, rng=rng)
    Stationary(atoms)
    return atoms


#: a task's start state, placed in its work folder by the sweep (a cooling step starts from the
#: final frame of the hotter step): ``numbers``, ``positions`` (A), ``cell`` (A)
START_STATE = "start_state.npz"


def start_atoms(task: MDTask, workdir: Any = None) -> Atoms:
    """The starting frame of ``task``: the state in ``workdir/START_STATE`` if the sweep put one
    there (positions and cell of another run's final frame; fresh Maxwell-Boltzmann velocities at
    this task's temperature, seeded), else :func:`initial_atoms`."""
    from pathlib import Path

    path = Path(workdir) / START_STATE if workdir is not None else None
    if path is None or not path.is_file():
        return initial_atoms(task)
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    with np.load(path, allow_pickle=False) as d:
        atoms = Atoms(d["numbers"], positions=d["positions"], cell=d["cell"], pbc=True)
    rng = np.random.default_rng(task.seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=task.temperature_K, rng=rng)
    Stationary(atoms)
    return atoms


def sweep_tasks(protocol: Any, ensemble: str | Ensemble, integrator: str | Integrator) -> list[MDTask]:
    """The tasks of one sweep of ``protocol`` (a :class:`pto_checks.protocols.Protocol`): one per
    temperature and replica (``md.replicas`` seeds ``seed + k``); NPT starts from the polar cell, NVT
    runs at the NVT lattice."""
    p = protocol.md
    ens = Ensemble(ensemble)
    a, c = (p.start_a, p.start_c) if ens is Ensemble.NPT else (p.nvt_a, p.nvt_c)
    replicas = int(getattr(p, "replicas", 1))
    return [MDTask(ens, Integrator(integrator), float(t), p.supercell, a, c, p.steps, p.timestep_fs, p.seed + k,
                   p.ttime_fs, p.pfactor_ase, p.mtk_tdamp_fs, p.mtk_pdamp_fs, p.friction_per_fs,
                   p.sample_every, p.trajectory_every, p.checkpoint_every)
            for t in p.temperatures_K for k in range(replicas)]
