"""Accuracy tier: a model's energies, forces and stresses against PBEsol ab initio MD frames of PbTiO3.

``data`` finds, fetches (with SHA-256 checksums) and loads the frames; ``metrics`` computes the
errors; ``stage`` caches them per model; ``figures`` draws them (the pytest fixture is
:mod:`pto_checks.plugin.accuracy`).
"""

from pto_checks.accuracy.data import (
    FUNCTIONAL,
    TEMPERATURES_K,
    ChecksumMismatch,
    DataUnavailable,
    FrameSet,
    ensure,
    fetch,
    find_local,
    load,
    stress_from_virial,
)
from pto_checks.accuracy.metrics import Predictions, TemperatureErrors, errors, growth, predict

__all__ = ["FUNCTIONAL", "TEMPERATURES_K", "ChecksumMismatch", "DataUnavailable", "FrameSet", "Predictions",
           "TemperatureErrors", "ensure", "errors", "fetch", "find_local", "growth", "load", "predict",
           "stress_from_virial"]
