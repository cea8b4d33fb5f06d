"""Regenerate ``tests/harness/data/mace-e3nn044/``: a small MACE model saved under MACE's own pins.

Run it in the environment MACE users have (mace-torch with the e3nn 0.4.4 it pins, torch < 2.6):

    bash scripts/install.sh mace-legacy
    PYTHONPATH=$PWD .venv-mace-legacy/bin/python scripts/make_mace_e3nn044_fixture.py

It builds the harness's small ScaleShiftMACE (``tests/harness/small_models.py``) with MACE's own
classes, saves it with ``torch.save`` as MACE does (``small.model``), and writes ``reference.json``:
energy (eV), forces (eV/A) and stress (eV/A^3, ASE's Voigt order) of a few PbTiO3 cells computed
there by ``MACECalculator`` in float64, with the versions that computed them. The harness test
converts the file under the main environment's e3nn and must reproduce these numbers to 1e-6.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pto_checks import structures  # noqa: E402
from tests.harness import small_models  # noqa: E402

OUT = ROOT / "tests" / "harness" / "data" / "mace-e3nn044"


def cells():
    """Name -> ASE Atoms: the polar cell, a rattled 2x1x1 cell and a strained cubic 2x2x2 cell."""
    polar = structures.tetragonal()
    rattled = structures.supercell(structures.tetragonal(), 2, 1, 1)
    rattled.rattle(0.05, seed=7)
    strained = structures.supercell(structures.cubic(), 2)
    strained.rattle(0.03, seed=3)
    strained.set_cell(strained.cell.array * [[1.01], [0.99], [1.02]], scale_atoms=True)
    return {"polar_1x1x1": polar, "rattled_2x1x1": rattled, "strained_cubic_2x2x2": strained}


def main() -> None:
    import e3nn
    from mace.calculators import MACECalculator

    if not e3nn.__version__.startswith("0.4."):
        sys.exit(f"run this under mace-torch's pinned e3nn 0.4.x (found e3nn {e3nn.__version__}): "
                 "bash scripts/install.sh mace-legacy")
    OUT.mkdir(parents=True, exist_ok=True)
    path = small_models.mace_model_file(OUT / "small.model")
    calc = MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")
    ref = {"versions": {d: version(d) for d in ("mace-torch", "e3nn", "torch", "ase")},
           "units": {"energy": "eV", "forces": "eV/Angstrom", "stress": "eV/Angstrom^3 (Voigt xx yy zz yz xz xy)"},
           "cells": {}}
    for name, atoms in cells().items():
        atoms.calc = calc
        ref["cells"][name] = {
            "symbols": atoms.get_chemical_symbols(),
            "positions": atoms.positions.tolist(),
            "cell": atoms.cell.array.tolist(),
            "energy": float(atoms.get_potential_energy()),
            "forces": atoms.get_forces().tolist(),
            "stress": atoms.get_stress().tolist(),
        }
    (OUT / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes) and reference.json under {ref['versions']}")


if __name__ == "__main__":
    main()
