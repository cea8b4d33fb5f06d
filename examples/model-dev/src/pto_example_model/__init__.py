"""A stand-in for a model developer's force field: its "weights" are the checkpoint file beside this
module, its calculator an elastic network of PbTiO3 springs (pto-checks' synthetic calculator, so
the example needs no training).  The entry point ``pto_checks.models`` hands pto-checks the model
``example-model``; gating a new checkpoint is committing a new ``checkpoint.json``.

Checkpoint fields: ``lattice_scale`` (the rest lattice relative to the PBEsol P4mm cell; 1 is the
sound model), ``stiffness_scale`` (factor on every spring constant).
"""

from __future__ import annotations

import json
from pathlib import Path

from pto_checks.models import Loaded, ModelSpec
from pto_checks.models.base import sha256_files

CHECKPOINT = Path(__file__).with_name("checkpoint.json")


def calculator(checkpoint: str | Path = CHECKPOINT):
    """The ASE calculator of ``checkpoint``."""
    from pto_checks import structures
    from pto_checks.models.synthetic import _K_GOOD, ElasticNetworkCalculator

    params = json.loads(Path(checkpoint).read_text())
    reference = structures.tetragonal()
    reference.set_cell(reference.cell * float(params["lattice_scale"]), scale_atoms=True)
    k = {pair: value * float(params["stiffness_scale"]) for pair, value in _K_GOOD.items()}
    return ElasticNetworkCalculator(reference, k=k)


def _load(spec: ModelSpec, device: str) -> Loaded:
    path = Path(spec.options["checkpoint"])
    return Loaded(calculator(path), sha256_files([path]), [str(path)])


def pto_models() -> list[ModelSpec]:
    """The models this package registers with pto-checks (entry point group ``pto_checks.models``)."""
    return [ModelSpec("example-model", "example", "checkpoint", "PBEsol", str(CHECKPOINT), _load,
                      options={"checkpoint": str(CHECKPOINT)}, in_all=False,
                      description="example model developer's checkpoint (elastic-network stand-in)")]
