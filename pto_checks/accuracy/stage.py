"""The cached accuracy stage: model -> predictions on the AIMD frames -> errors per temperature.

One cache entry per (model fingerprint, data checksums, temperature, subsample, code version): the
model's predictions (``predictions.npz``) and its errors (``meta.json``). A rerun reads them in
milliseconds; a changed subsample, data file or model is a new entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pto_checks.accuracy import data as _data
from pto_checks.accuracy.metrics import STAGE_VERSION, Predictions, TemperatureErrors, errors, predict
from pto_checks.cache import Cache, cache_key


@dataclass
class TemperatureResult:
    """Frames, a model's predictions on them and the errors, for one temperature."""

    frames: _data.FrameSet
    predictions: Predictions
    errors: TemperatureErrors
    cache_hit: bool


def accuracy_key(model: Any, temperature_K: int, every: int = 1, offset: int = 0) -> str:
    """Cache key of one temperature's accuracy entry: the model, the data's checksums, the subsample
    (``offset`` counts modulo ``every``: the same frames) and the stage's code version."""
    return cache_key("accuracy", model=model.identity(), data=_data.checksum(_data.keys_for([temperature_K])),
                     temperature_K=int(temperature_K), every=int(every), offset=int(offset) % max(1, int(every)),
                     code=STAGE_VERSION)


def evaluate(model: Any, root: Path, temperature_K: int, cache: Cache, every: int = 1, offset: int = 0,
             progress: Callable[[int, int], None] | None = None) -> TemperatureResult:
    """Predictions and errors of ``model`` (a :class:`~pto_checks.models.LoadedModel`) on one
    temperature's frames in ``root`` (every ``every``-th frame from ``offset``), cached."""
    frames = _data.load(root, temperature_K, every, offset)
    key = accuracy_key(model, temperature_K, every, offset)

    def compute(work: Path) -> dict[str, Any]:
        pred = predict(model.calculator, frames, progress)
        np.savez(work / "predictions.npz", **pred.to_arrays())
        return {"errors": errors(frames, pred).to_dict(), "indices": frames.indices.tolist()}

    folder, meta, hit = cache.get_or_compute("accuracy", key, compute,
                                             meta={"model": model.identity(), "temperature_K": temperature_K,
                                                   "every": every, "offset": offset})
    with np.load(folder / "predictions.npz") as z:
        pred = Predictions.from_arrays(z)
    if len(pred.energy) != len(frames) or meta.get("indices") != frames.indices.tolist():
        raise RuntimeError(f"accuracy cache entry {folder} does not match the frames; delete it")
    return TemperatureResult(frames, pred, TemperatureErrors(**meta["errors"]), hit)
