"""Time the periodic neighbor list (:func:`pto_checks.neighbors.neighbor_list`, vesin) on PbTiO3
supercells, one CPU thread: ``python scripts/neighbor_bench.py`` (prints ms per call and pairs).

Measured with this script on the 2-core development machine (2026-11-26): the brute-force torch
list it replaced took 854 ms at 625 atoms and 16.1 s at 2,560 atoms (cutoff 6 A, same pairs).
"""

import time

import torch

from pto_checks import structures
from pto_checks.neighbors import neighbor_list

torch.set_num_threads(1)
for n, cutoff in ((5, 6.0), (8, 6.0)):
    atoms = structures.supercell(structures.tetragonal(a=3.9, c=4.15), n)
    atoms.rattle(0.05, seed=0)
    pos, cell = torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)
    neighbor_list(pos, cell, cutoff)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        i, _, _, _ = neighbor_list(pos, cell, cutoff)
        times.append(time.perf_counter() - t0)
    print(f"{len(atoms)} atoms, cutoff {cutoff} A: {min(times) * 1000:.1f} ms, {len(i)} pairs")
