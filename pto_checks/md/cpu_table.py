"""The CPU engine table: what ``benchmarks/cpu_engines.py`` measured, as ``--engine auto`` and
the batched engine's memory bound on a CPU use it.

``cpu_engines.json`` next to this module (written by ``benchmarks/cpu_engines.py``; the full
rows with the machine and command are in ``benchmarks/cpu_engines.json``) holds, per model family,
per cell size (atoms) and number of replicas: the ASE and batched engines' replica-steps per second
and the batched engine's MD memory per replica (MB, resident, the model itself not included).

* :func:`batched_faster`: whether the batched engine was faster than ASE at the measured size
  nearest to ``n_atoms`` for every number of replicas measured (a sequential sweep's batch
  shrinks as temperatures are decided, so it must win alone as in a crowd); None where the family
  was not measured within a factor of 2 in atoms (then ``auto`` keeps ASE on a CPU).
* :func:`replica_mb`: the batched engine's memory per replica on a CPU, linear in atoms from the
  nearest measured size; a family not measured gets the largest per-atom figure measured.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).with_name("cpu_engines.json")
#: MB per replica-atom assumed where the table has nothing at all (no benchmark was run)
FALLBACK_MB_PER_ATOM = 20.0


@dataclass(frozen=True)
class CpuRow:
    """One measured case: ``n_atoms``, ``replicas``; rates in replica-steps per second; memory in MB."""

    n_atoms: int
    replicas: int
    ase_replica_steps_per_s: float
    batched_replica_steps_per_s: float
    batched_mb_per_replica: float


@lru_cache(maxsize=4)
def load(path: Path = TABLE) -> dict[str, tuple[CpuRow, ...]]:
    """The table by family (empty when the file is missing or unreadable)."""
    try:
        data = json.loads(Path(path).read_text())
        return {fam: tuple(CpuRow(**r) for r in rows) for fam, rows in data["families"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _nearest(rows: tuple[CpuRow, ...], n_atoms: int) -> list[CpuRow]:
    sizes = sorted({r.n_atoms for r in rows}, key=lambda a: (abs(math.log(a / n_atoms)), a))
    return [r for r in rows if r.n_atoms == sizes[0]] if sizes else []


#: how far (a factor in atoms) a measured size may be from the run's and still decide the engine
SIZE_FACTOR = 2.0


def batched_faster(family: str, n_atoms: int, table: dict[str, tuple[CpuRow, ...]] | None = None) -> bool | None:
    """Whether the batched engine beat ASE on a CPU for ``family`` at the measured size nearest to
    ``n_atoms``, at every number of replicas measured; None when the family was not measured within
    a factor :data:`SIZE_FACTOR` of ``n_atoms`` (CHGNet's ratio turned over between 40 and 135 atoms)."""
    rows = _nearest((load() if table is None else table).get(family, ()), n_atoms)
    if not rows or max(rows[0].n_atoms / n_atoms, n_atoms / rows[0].n_atoms) > SIZE_FACTOR:
        return None
    return all(r.batched_replica_steps_per_s > r.ase_replica_steps_per_s for r in rows)


def replica_mb(family: str, n_atoms: int, table: dict[str, tuple[CpuRow, ...]] | None = None) -> float:
    """The batched engine's memory per replica on a CPU (MB) for ``n_atoms`` atoms."""
    table = load() if table is None else table
    rows = _nearest(table.get(family, ()), n_atoms)
    if rows:
        per_atom = max(r.batched_mb_per_replica / r.n_atoms for r in rows)
    else:
        measured = [r.batched_mb_per_replica / r.n_atoms for rs in table.values() for r in rs]
        per_atom = max(measured, default=FALLBACK_MB_PER_ATOM)
    return per_atom * n_atoms
