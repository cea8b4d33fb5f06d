"""Statistics of one MD run (one temperature): equilibration, correlation, standard errors.

For each sampled time series (c/a, a, c, |P|, Pz, the melting measures ...):

* the equilibrated start ``t0`` (J. D. Chodera, J. Chem. Theory Comput. 12, 1799 (2016): the start
  that maximises the number of effectively uncorrelated samples after it), detected on the run's
  key observables and shared by every series of the run (one production window per run);
* the statistical inefficiency ``g`` of the production window (g = 1 + 2 sum of the normalised
  autocorrelation function; samples per independent sample) and ``n_eff = (n - t0) / g``;
* the mean and its standard error ``sem = std * sqrt(g / (n - t0))``;
* an independent check of the error by Flyvbjerg-Petersen blocking (J. Chem. Phys. 91, 461 (1989)):
  the blocked standard error must reach a plateau, found with the criterion of Lee, Needs and
  Drummond (Phys. Rev. B 84, 245117 (2011), as in the ``pyblock`` package): the smallest block
  size B with B^3 > 2 N (SE_B / SE_1)^4.  No plateau means the run is too short to trust its error.

Equilibration and the inefficiency come from pymbar (``pymbar.timeseries``, the reference
implementation of Chodera's method).  The blocking analysis is a few lines of numpy kept here:
``pyblock`` (the package that implements it) is unmaintained since 2018 and pulls pandas.

Series pymbar cannot handle are treated explicitly: an empty series gives NaN; a constant series
(e.g. the order parameter of a rigid crystal, exactly 1) has sem 0 and ``n_eff = n``; a series
shorter than :data:`MIN_SAMPLES` has no error estimate (sem NaN: undecidable).

Units: every :class:`SeriesStats` carries its ``unit``; times in ps.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pto_checks.drift import DriftBound, drift_bound

#: Fewer samples than this: no error estimate (the autocorrelation cannot be estimated).
MIN_SAMPLES = 8


def _timeseries():
    """``pymbar.timeseries`` with its import-time banner and JAX notice silenced."""
    for name in ("pymbar", "pymbar.timeseries", "pymbar.mbar_solvers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import pymbar.timeseries as ts
    except ImportError as exc:  # pragma: no cover - pymbar is a core dependency
        raise ImportError(
            "pto-checks needs pymbar for its MD statistics: pip install 'pymbar>=4' "
            "(scripts/install.sh installs it)"
        ) from exc
    return ts


@dataclass(frozen=True)
class Blocking:
    """Flyvbjerg-Petersen blocking of one series.

    ``sem_by_level``: the standard error of the mean with block size 2**k, k = 0, 1, ...
    (levels with at least 4 blocks).  ``plateau``: whether the Lee-Needs-Drummond criterion found
    an optimal block size (``block_size``, samples); ``sem``: the error at that size (NaN without
    a plateau).
    """

    sem_by_level: tuple[float, ...]
    plateau: bool
    block_size: int | None
    sem: float


def blocking(x: Sequence[float]) -> Blocking:
    """Blocking analysis of ``x`` (see :class:`Blocking`)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    sems: list[float] = []
    blocks = x.copy()
    while len(blocks) >= 4:
        sems.append(float(blocks.std(ddof=1) / math.sqrt(len(blocks))))
        m = len(blocks) // 2
        blocks = 0.5 * (blocks[: 2 * m : 2] + blocks[1 : 2 * m : 2])
    if not sems or sems[0] == 0.0:
        return Blocking(tuple(sems), bool(sems), 1 if sems else None, sems[0] if sems else float("nan"))
    for k, se in enumerate(sems):
        size = 2**k
        if size**3 > 2 * n * (se / sems[0]) ** 4:
            return Blocking(tuple(sems), True, size, se)
    return Blocking(tuple(sems), False, None, float("nan"))


@dataclass(frozen=True)
class SeriesStats:
    """Statistics of one observable's time series over the production window ``[t0:]``.

    ``n``: samples in the whole series; ``t0``: index of the first production sample;
    ``g``: statistical inefficiency (samples); ``n_eff``: effectively independent samples;
    ``mean``, ``std``, ``sem`` in ``unit``; ``sample_interval_ps``: time between samples;
    ``blocking_plateau`` / ``sem_blocking``: the independent blocking estimate;
    ``note``: why an estimate is degenerate (``constant``, ``too short``, ``no samples``) or None.
    ``drift``: what the series could still reach if it has not equilibrated
    (:class:`pto_checks.drift.DriftBound`; None for series too short to fit a trend).
    """

    name: str
    unit: str
    n: int
    t0: int
    g: float
    n_eff: float
    mean: float
    std: float
    sem: float
    sample_interval_ps: float
    blocking_plateau: bool
    sem_blocking: float
    note: str | None = None
    drift: DriftBound | None = None

    @property
    def t0_ps(self) -> float:
        """Equilibration time discarded (ps)."""
        return self.t0 * self.sample_interval_ps

    @property
    def production_ps(self) -> float:
        """Length of the production window (ps)."""
        return (self.n - self.t0) * self.sample_interval_ps

    @property
    def n_eff_per_ps(self) -> float:
        """Independent samples gained per ps of further simulation (1 / (g * interval))."""
        if not (self.g > 0 and self.sample_interval_ps > 0) or math.isnan(self.g):
            return float("nan")
        return 1.0 / (self.g * self.sample_interval_ps)

    def interval(self, z: float) -> tuple[float, float]:
        """``mean -+ z * sem`` (NaN when there is no error estimate)."""
        return (self.mean - z * self.sem, self.mean + z * self.sem)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def series_statistics(x: Sequence[float], name: str = "", unit: str = "", t0: int | None = None,
                      sample_interval_ps: float = float("nan")) -> SeriesStats:
    """:class:`SeriesStats` of ``x``; ``t0`` (samples) given, or detected on ``x`` itself."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    nan = float("nan")
    if n == 0:
        return SeriesStats(name, unit, 0, 0, nan, 0.0, nan, nan, nan, sample_interval_ps, False, nan,
                           "no samples")
    if not np.all(np.isfinite(x)):
        return SeriesStats(name, unit, n, 0, nan, 0.0, nan, nan, nan, sample_interval_ps, False, nan,
                           "non-finite samples")
    if np.ptp(x) == 0.0:  # pymbar returns Neff = 1 here; the mean is exact for this run
        return SeriesStats(name, unit, n, 0, 1.0, float(n), float(x[0]), 0.0, 0.0, sample_interval_ps,
                           True, 0.0, "constant")
    if n < MIN_SAMPLES:
        return SeriesStats(name, unit, n, 0, nan, nan, float(x.mean()), float(x.std(ddof=1)), nan,
                           sample_interval_ps, False, nan, f"too short ({n} < {MIN_SAMPLES} samples)")
    if t0 is None:
        t0 = equilibration_start(x)
    t0 = int(min(max(t0, 0), n - MIN_SAMPLES))
    y = x[t0:]
    if np.ptp(y) == 0.0:
        return SeriesStats(name, unit, n, t0, 1.0, float(len(y)), float(y[0]), 0.0, 0.0,
                           sample_interval_ps, True, 0.0, "constant", drift=drift_bound(x, sample_interval_ps))
    g = inefficiency(y)
    std = float(y.std(ddof=1))
    sem = std * math.sqrt(g / len(y))
    blk = blocking(y)
    return SeriesStats(name, unit, n, t0, g, len(y) / g, float(y.mean()), std, sem, sample_interval_ps,
                       blk.plateau, blk.sem, drift=drift_bound(x, sample_interval_ps))


def inefficiency(y: np.ndarray) -> float:
    """Statistical inefficiency g >= 1 of ``y`` (pymbar; the whole series if it never decorrelates)."""
    ts = _timeseries()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = float(ts.statistical_inefficiency(np.asarray(y, dtype=float), fast=False))
    except ts.ParameterError:  # pymbar: correlation never decays within the series
        g = float(len(y))
    return max(1.0, min(g, float(len(y))))


def equilibration_start(x: Sequence[float], max_evaluations: int = 200) -> int:
    """Chodera's equilibrated start (index) of ``x``, via ``pymbar.timeseries.detect_equilibration``.

    At most ``max_evaluations`` candidate starts are tried (pymbar's ``nskip``), so the cost stays
    bounded for long series.  Constant or very short series start at 0.
    """
    x = np.asarray(x, dtype=float)
    if len(x) < MIN_SAMPLES or np.ptp(x) == 0.0 or not np.all(np.isfinite(x)):
        return 0
    ts = _timeseries()
    nskip = max(1, len(x) // max_evaluations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0, _, _ = ts.detect_equilibration(x, fast=True, nskip=nskip)
    return int(min(t0, len(x) - MIN_SAMPLES))


@dataclass(frozen=True)
class RunStatistics:
    """Statistics of one temperature: every series over one shared production window.

    ``t0``: the shared equilibrated start (samples; the latest of the starts detected on
    ``equilibration_from``); ``series``: name -> :class:`SeriesStats`.
    """

    t0: int
    n: int
    sample_interval_ps: float
    equilibration_from: tuple[str, ...]
    series: Mapping[str, SeriesStats] = field(default_factory=dict)

    def __getitem__(self, name: str) -> SeriesStats:
        return self.series[name]

    @property
    def t0_ps(self) -> float:
        return self.t0 * self.sample_interval_ps

    def to_dict(self) -> dict[str, Any]:
        return {"t0": self.t0, "t0_ps": self.t0_ps, "n": self.n, "sample_interval_ps": self.sample_interval_ps,
                "equilibration_from": list(self.equilibration_from),
                "series": {k: v.to_dict() for k, v in self.series.items()}}


def run_statistics(series: Mapping[str, Sequence[float]], units: Mapping[str, str],
                   sample_interval_ps: float, equilibration_from: Sequence[str]) -> RunStatistics:
    """Statistics of several series sampled together (same length).

    The production window starts at the latest equilibrated start detected on the series named in
    ``equilibration_from`` (those that are present and not constant), so all observables of a run
    share one window.
    """
    lengths = {len(v) for v in series.values()}
    if len(lengths) > 1:
        raise ValueError(f"series of one run must have the same length, got {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    used = tuple(k for k in equilibration_from if k in series)
    t0 = max((equilibration_start(series[k]) for k in used), default=0)
    stats = {k: series_statistics(v, k, units.get(k, ""), t0, sample_interval_ps) for k, v in series.items()}
    return RunStatistics(t0, n, sample_interval_ps, used, stats)


def norm_statistics(components: Sequence[SeriesStats], name: str = "P_abs") -> SeriesStats:
    """|<v>| of a vector from its components' statistics, with the propagated standard error.

    sem = sqrt(sum (m_a / |m|)^2 sem_a^2) (first order; valid when |m| >> sem, otherwise the
    interval is wide and decisions near zero are inconclusive, as they should be).  g and n_eff
    are those of the least-sampled component.
    """
    m = np.array([c.mean for c in components])
    s = np.array([c.sem for c in components])
    norm = float(np.linalg.norm(m))
    sem = float(np.sqrt(np.sum((m / norm) ** 2 * s**2))) if norm > 0 else float(np.linalg.norm(s))
    worst = min(components, key=lambda c: c.n_eff if not math.isnan(c.n_eff) else -1.0)
    notes = {c.note for c in components if c.note}
    note = None if not notes else ("constant" if notes == {"constant"} else "; ".join(sorted(notes)))
    blk = [c.sem_blocking for c in components]
    sem_blk = float(np.sqrt(np.sum((m / norm) ** 2 * np.square(blk)))) if norm > 0 else float(np.linalg.norm(blk))
    return SeriesStats(name, components[0].unit, worst.n, worst.t0, worst.g, worst.n_eff, norm,
                       float(np.linalg.norm([c.std for c in components])), sem, worst.sample_interval_ps,
                       all(c.blocking_plateau for c in components), sem_blk, note)
