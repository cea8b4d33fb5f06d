"""What a still-drifting series could reach: the bound that lets a run that has not equilibrated
decide the comparisons its drift cannot change.

A run whose equilibrated start lies in its second half cannot give a trusted mean: its observables
still move.  But a comparison is changed by the drift only if the drift can carry the quantity
across the threshold.  :class:`DriftBound` summarises the last half of the series (the part after
the run's start-up transient is most likely over) by

* the range of its frames, ``[frame_min, frame_max]``;
* a straight-line fit: the fitted value at the end of the run, ``end`` +- ``end_sem``, and the
  trend ``slope_per_ps`` +- ``slope_sem_per_ps`` (standard errors of the least-squares fit scaled
  by the square root of the residuals' statistical inefficiency, so correlated noise is not taken
  for a trend);

and :meth:`DriftBound.reach` extends that range by the trend continued for ``horizon_ps`` (the
decision uses the run's own length: where the quantity could be after another run as long as this
one), at ``z`` standard errors; for an equilibrated window that holds a slow mode (an oscillation,
which turns back) the reach is the range of the window's batch means instead. A comparison whose
threshold lies outside the reach is decided on the side the whole reach lies; one whose threshold
lies inside it stays undecided. The rule trusts the trend over the horizon: a relaxation much slower
than the run looks like a flat series here, as it does to the equilibration detection itself
(measured in ``benchmarks/drift_calibration.py``).

Units: the series' own; times in ps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: fewest samples in the fitted window (half the run) for a bound
MIN_WINDOW = 16


@dataclass(frozen=True)
class DriftBound:
    """Summary of the last ``window_ps`` of a series (see the module docstring); ``n_eff``: the
    window's effectively independent samples (residuals' statistical inefficiency);
    ``span_min``, ``span_max``: the lowest and highest batch mean over the whole production window
    (the batches of :func:`pto_checks.statistics.batch_means_sem`), ``span_sem``: the standard
    error of one batch mean (NaN where not recorded): the slow part of the window, which a slow
    mode's reach covers."""

    window_ps: float
    run_ps: float
    frame_min: float
    frame_max: float
    end: float
    end_sem: float
    slope_per_ps: float
    slope_sem_per_ps: float
    n_eff: float
    span_min: float = math.nan
    span_max: float = math.nan
    span_sem: float = math.nan

    def reach(self, z: float, horizon_ps: float | None = None, turning: bool = False) -> tuple[float, float]:
        """``(low, high)``: the frames' range widened by the trend continued for ``horizon_ps``
        (default: the run's own length) with ``z`` standard errors of the end value and the slope.

        ``turning``: an equilibrated window that holds a slow mode (a slope or a crest of an
        oscillation it does not span), which turns back rather than drifts on: the reach is the
        range of the window's batch means (its slow part, over the whole production window), each
        widened by ``z`` of its standard errors.  An oscillation crosses its centre within any
        window of half a period or more, so its long-run mean lies in that range; the fast noise
        of single frames does not widen it.  (Continued one way from the last half's frames, the
        slope of half a period of a 4.5-ps oscillation in a 3-ps run decided the side of its mean
        in 0.6 % of such runs with the true mean on the threshold.)  Without a recorded span it
        falls back on the one-way reach."""
        if turning and math.isfinite(self.span_min) and math.isfinite(self.span_max) and math.isfinite(self.span_sem):
            return self.span_min - z * self.span_sem, self.span_max + z * self.span_sem
        h = self.run_ps if horizon_ps is None else horizon_ps
        spread = z * math.hypot(self.end_sem, self.slope_sem_per_ps * h)
        low = self.end + min(self.slope_per_ps, 0.0) * h - spread
        high = self.end + max(self.slope_per_ps, 0.0) * h + spread
        return min(self.frame_min, low), max(self.frame_max, high)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | DriftBound | None) -> DriftBound | None:
        if d is None or isinstance(d, DriftBound):
            return d
        return cls(**{k: float(d[k]) for k in cls.__dataclass_fields__ if k in d})


def drift_bound(x: Sequence[float], sample_interval_ps: float,
                inefficiency: Callable[[np.ndarray], float],
                span: tuple[float, float, float] | None = None) -> DriftBound | None:
    """:class:`DriftBound` of the last half of ``x`` (None when that half has fewer than
    :data:`MIN_WINDOW` samples, a non-finite value or no time step).  ``inefficiency``: the
    statistical inefficiency of a series (:func:`pto_checks.statistics.inefficiency`, passed in so
    that this module stays below the statistics module); ``span``: (``span_min``, ``span_max``,
    ``span_sem``) of the production window, measured by the caller."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    y = x[n // 2:]
    span_lo, span_hi, span_sem = span if span is not None else (math.nan, math.nan, math.nan)
    m = len(y)
    if m < MIN_WINDOW or not np.all(np.isfinite(y)) or not (sample_interval_ps > 0):
        return None
    t = (np.arange(n // 2, n) - (n - 1)) * sample_interval_ps  # 0 at the last sample: the intercept is the end value
    if np.ptp(y) == 0.0:
        return DriftBound(m * sample_interval_ps, n * sample_interval_ps, float(y[0]), float(y[0]), float(y[0]),
                          0.0, 0.0, 0.0, float(m), span_lo, span_hi, span_sem)
    design = np.column_stack([np.ones(m), t])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    g = inefficiency(resid) if np.ptp(resid) > 0 else 1.0
    s2 = float(resid @ resid) / max(m - 2, 1) * g  # residual variance, inflated for correlation
    cov = s2 * np.linalg.inv(design.T @ design)
    return DriftBound(m * sample_interval_ps, n * sample_interval_ps, float(y.min()), float(y.max()),
                      float(coef[0]), float(math.sqrt(cov[0, 0])), float(coef[1]), float(math.sqrt(cov[1, 1])),
                      float(m / g), span_lo, span_hi, span_sem)
