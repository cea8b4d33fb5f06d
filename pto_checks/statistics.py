"""Statistics of one MD run (one temperature): equilibration, correlation, standard errors.

For each sampled time series (c/a, a, c, |P|, Pz, the melting measures ...), over one production
window ``[t0:]`` shared by every series of the run:

* the equilibrated start ``t0``: detected (J. D. Chodera, J. Chem. Theory Comput. 12, 1799
  (2016), pymbar's statistical inefficiency; the earliest start within
  :data:`EQUILIBRATION_TOLERANCE` of the best, :func:`equilibration_start`) on the potential
  energy only, a series no check decides, so the window is never
  chosen by looking at the decided quantity's own error (choosing it on that series prefers
  windows whose inefficiency comes out small: measured, "95 %" intervals covered 0.57-0.90);
  without a potential energy, a fixed discard (``1 - production_fraction`` of the run);
* two error estimates of the mean, and the larger half-width is the interval:
  the integrated autocorrelation (pymbar's statistical inefficiency ``g``,
  ``sem_acf = std sqrt(g / n)``, Student-t with ``n_eff - 1`` degrees of freedom), which cuts the
  autocorrelation at its first zero crossing and so sees only the fast noise, and
  non-overlapping batch means (:data:`MIN_BATCHES` to :data:`MAX_BATCHES` batches, each at least
  :data:`BATCH_N_EFF` effective samples; Student-t with batches - 1 degrees of freedom), which sees
  any mode slower than a batch;
* a guard for modes slower than the window (a cell that rings with a period of several ps): the
  power in the window's slope and crest (Legendre degree 1 and 2) and at its two longest
  periodogram periods may not exceed :data:`SLOW_POWER_LIMIT` times the fast noise's, measured on
  what is left once the slope and crest are removed (:func:`slow_mode_ratio`), else the window
  spans less than about two periods of its dominant oscillation (or drifts) and the run is
  undecided (``halves_agree`` False); and the window's signed crest (:func:`crest_z`), with which
  :mod:`pto_checks.decisions` refuses an "above" from a window on a crest or a "below" from one
  in a trough (:data:`CREST_Z_LIMIT`);
* the Flyvbjerg-Petersen blocking estimate (J. Chem. Phys. 91, 461 (1989), plateau by the
  criterion of Lee, Needs and Drummond, Phys. Rev. B 84, 245117 (2011)), kept as a third check:
  no plateau, no decision.

Independent replicas (``md.replicas``, :func:`combine_replicas`) add a third estimate, the spread
of the replica means (Student-t with R - 1 degrees of freedom), calibrated by construction even
for oscillations no single run resolves.

Series pymbar cannot handle are treated explicitly: an empty series gives NaN; a constant series
(e.g. the order parameter of a rigid crystal, exactly 1) has sem 0 and ``n_eff = n``; a series
shorter than :data:`MIN_SAMPLES` has no error estimate (sem NaN: undecidable).

Units: every :class:`SeriesStats` carries its ``unit``; times in ps.  Calibration:
``benchmarks/calibrate_statistics.py`` (coverage and wrong-decision rates through this path).
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
#: The equilibrated start is the earliest whose n_eff is within this fraction of Chodera's
#: maximum (:func:`equilibration_start`).
EQUILIBRATION_TOLERANCE = 0.1
#: Periodogram bins (periods of the window, half the window) watched for a mode slower than the window.
SLOW_BINS = 2
#: Power in the window's slope, crest and two longest periods over the fast-noise level
#: (:func:`slow_mode_ratio`) above which the window is too short to decide: chosen in
#: ``benchmarks/slow_guard_scan.md`` (limit 4: 3-ps windows of a 4.5-ps oscillation decided in
#: 0.1 % of runs instead of 0.45 %, for 8-14 % of the ordinary decisions near the threshold).
SLOW_POWER_LIMIT = 4.0
#: A decision "above" from a window whose crest (:func:`crest_z`) is below minus this, or "below"
#: from one whose trough is above it, is refused: the window may sit on the top (bottom) of an
#: oscillation it does not span, and its mean overstate (understate) the long-run mean.  One-sided,
#: so it costs 3-5 % of the decisions near a threshold (``benchmarks/slow_guard_scan.md``).
CREST_Z_LIMIT = 1.5
#: Batch means: at least this many batches (Student-t with MIN_BATCHES - 1 degrees of freedom) ...
MIN_BATCHES = 4
#: ... at most this many ...
MAX_BATCHES = 10
#: ... each batch at least this many effectively independent samples long (when the run allows).
BATCH_N_EFF = 5.0


def t_quantile(p: float, dof: float) -> float:
    """Student-t quantile (normal for infinite or NaN degrees of freedom)."""
    from scipy.stats import norm, t

    if not math.isfinite(dof) or dof <= 0:
        return float(norm.ppf(p))
    return float(t.ppf(p, max(dof, 1.0)))


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
    ``blocking_plateau`` / ``sem_blocking``: the blocking estimate;
    ``note``: why an estimate is degenerate (``constant``, ``too short``, ``no samples``) or None;
    ``sem_acf`` (dof ``n_eff - 1``) and ``sem_batch`` (``batches`` batch means, dof
    ``batches - 1``): the two estimates; ``sem`` and ``dof`` are those of the one with the larger
    95 % half-width (``t(dof) * sem``), which every interval uses; ``halves_agree``: no mode
    slower than about half the window (:func:`slow_mode_ratio`); ``replicas``: independent
    runs behind the mean (:func:`combine_replicas`); ``slow_ratio``: :func:`slow_mode_ratio` of the
    window (the mean over replicas; NaN where not measured); ``crest_z``: :func:`crest_z` of the
    window (over replicas, their sum over sqrt(R)).  ``drift``: what the series could still reach
    if it has not equilibrated or holds a slow mode (:class:`pto_checks.drift.DriftBound`; None for
    series too short to fit a trend).
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
    dof: float = math.inf
    sem_acf: float = math.nan
    sem_batch: float = math.nan
    batches: int = 0
    halves_agree: bool = True
    replicas: int = 1
    drift: DriftBound | None = None
    slow_ratio: float = math.nan
    crest_z: float = math.nan

    def __post_init__(self) -> None:
        # a row read back from JSON carries its drift bound as a mapping
        if isinstance(self.drift, Mapping):
            object.__setattr__(self, "drift", DriftBound.from_dict(dict(self.drift)))

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

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Two-sided ``level`` interval ``mean -+ t(dof) * sem`` (NaN without an error estimate)."""
        h = t_quantile(0.5 + level / 2.0, self.dof) * self.sem
        return (self.mean - h, self.mean + h)

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
                           sample_interval_ps, True, 0.0, "constant", drift=drift_bound(
                               x, sample_interval_ps, inefficiency, (float(y[0]), float(y[0]), 0.0)))
    g = inefficiency(y)
    std = float(y.std(ddof=1))
    m = len(y)
    n_eff = m / g
    sem_acf = std * math.sqrt(g / m)
    dof_acf = max(n_eff - 1.0, 1.0)
    sem_bm, nb = batch_means_sem(y, n_eff)
    sem, dof = sem_acf, dof_acf
    if nb and t_quantile(0.975, nb - 1) * sem_bm > t_quantile(0.975, dof_acf) * sem_acf:
        sem, dof = sem_bm, float(nb - 1)
    blk = blocking(y)
    slow, crest = _slow_components(y)
    return SeriesStats(name, unit, n, t0, g, n_eff, float(y.mean()), std, sem, sample_interval_ps,
                       blk.plateau, blk.sem, None, dof, sem_acf, sem_bm, nb,
                       slow <= SLOW_POWER_LIMIT,
                       drift=drift_bound(x, sample_interval_ps, inefficiency, batch_span(y, n_eff)),
                       slow_ratio=slow, crest_z=crest)


def _batch_means(y: np.ndarray, n_eff: float) -> tuple[np.ndarray, float] | None:
    """The batch means of :func:`batch_means_sem` and the standard error of one of them (their
    spread inflated by sqrt(1 + g / batch length)); None for fewer than 2 samples per batch."""
    nb = int(min(MAX_BATCHES, max(MIN_BATCHES, math.floor(n_eff / BATCH_N_EFF))))
    size = len(y) // nb
    if size < 2:
        return None
    # the batches end at the end of the window (the oldest samples are the ones left over)
    b = y[len(y) - nb * size:].reshape(nb, size).mean(axis=1)
    # neighbouring batch means share the correlation across their boundary, so their spread
    # underestimates the error of the mean by about g / size (g samples per independent one)
    g = len(y) / n_eff if n_eff > 0 else 1.0
    return b, float(b.std(ddof=1) * math.sqrt(1.0 + g / size))


def batch_span(y: np.ndarray, n_eff: float) -> tuple[float, float, float] | None:
    """(lowest batch mean, highest batch mean, standard error of one batch mean) of the window
    ``y``, with the batches of :func:`batch_means_sem`: the range of its slow part, for the reach
    of a window that holds a slow mode (:meth:`pto_checks.drift.DriftBound.reach`); None for fewer
    than 2 samples per batch."""
    batches = _batch_means(y, n_eff)
    if batches is None:
        return None
    b, sem_one = batches
    return float(b.min()), float(b.max()), sem_one


def batch_means_sem(y: np.ndarray, n_eff: float) -> tuple[float, int]:
    """(standard error of the mean from non-overlapping batch means, number of batches): as many
    batches as give each at least :data:`BATCH_N_EFF` effective samples, clipped to
    [:data:`MIN_BATCHES`, :data:`MAX_BATCHES`], the spread inflated by sqrt(1 + g / batch length)
    for the correlation between neighbouring batches (measured: without it 5.1-5.8 % wrong
    decisions at n_eff 10, with it 4.4 %); (NaN, 0) for fewer than 2 samples per batch."""
    batches = _batch_means(y, n_eff)
    if batches is None:
        return math.nan, 0
    b, sem_one = batches
    return sem_one / math.sqrt(len(b)), len(b)


def slow_mode_ratio(y: np.ndarray) -> float:
    """How much more power ``y`` has in its slowest components than its fast noise predicts.

    The slowest components: the window's straight line and parabola (orthonormal discrete Legendre
    polynomials of degree 1 and 2: the slope or the crest that a window shorter than one period of
    a slow oscillation holds) and the two longest periods of its periodogram (the window and half
    of it: an oscillation the window spans once or twice).  The fast-noise level is the spectral
    density at low frequency of what is left after the line and parabola are removed,
    S(0) = std^2 g of the residual (pymbar's ``g``), so a slow mode cannot raise its own reference
    (with the series itself as reference, the slow mode inflates it and hides itself: measured,
    sub-period windows were decided 1.1-1.5 % of the time instead of 0.1 %).

    For noise whose correlation is shorter than the window each of the four powers over S(0) is
    about chi-squared with one degree of freedom (exponential with mean 1 for the periodogram);
    a ratio above :data:`SLOW_POWER_LIMIT` means a slope, a crest or an oscillation the window does
    not span twice, or a drift.  Returns the largest of the four ratios (0 for a series too short
    to judge, or without noise)."""
    return _slow_components(y)[0]


def crest_z(y: np.ndarray) -> float:
    """The window's parabola component in units of its fast noise (as in :func:`slow_mode_ratio`),
    signed: negative for a crest (the middle of the window above its ends), positive for a trough;
    NaN for a series too short to judge.  A window on the crest of an oscillation it does not span
    overstates the long-run mean, one in a trough understates it (:data:`CREST_Z_LIMIT`)."""
    return _slow_components(y)[1]


def _slow_components(y: np.ndarray) -> tuple[float, float]:
    """(:func:`slow_mode_ratio`, :func:`crest_z`) of ``y``."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n < MIN_SAMPLES or not np.all(np.isfinite(y)):
        return 0.0, math.nan
    d = y - float(np.mean(y))
    q, _ = np.linalg.qr(np.vander(np.linspace(-1.0, 1.0, n), 3, increasing=True))
    q = q * np.sign(q[0])  # each Legendre column positive at the window's start: P2 > 0 at both ends
    c = q[:, 1:].T @ d
    resid = d - q[:, 1:] @ c
    if np.ptp(resid) == 0.0:
        return (0.0, 0.0) if np.ptp(d) == 0.0 else (math.inf, math.nan)
    s0 = float(resid.var(ddof=3)) * inefficiency(resid)
    power = np.abs(np.fft.rfft(d)[1:SLOW_BINS + 1]) ** 2 / n
    return float(max(float(np.max(c**2)), float(np.max(power))) / s0), float(c[1] / math.sqrt(s0))


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


def equilibration_start(x: Sequence[float], max_evaluations: int = 50,
                        tolerance: float | None = None) -> int:
    """Equilibrated start (index) of ``x``: Chodera's rule (J. Chem. Theory Comput. 12, 1799
    (2016)), the start that maximises the effectively independent samples after it,
    ``n_eff(t) = (n - t + 1) / g(t)`` (as ``pymbar.timeseries.detect_equilibration`` computes it,
    but with pymbar's full, not ``fast``, ``statistical_inefficiency``), taken as the *earliest*
    start whose ``n_eff`` is within ``tolerance`` (default :data:`EQUILIBRATION_TOLERANCE`) of
    that maximum.

    On a stationary series ``n_eff(t)`` is flat up to the noise of ``g``, so its argmax lands
    anywhere: on 300 white-noise series of 150 samples, pymbar's ``detect_equilibration``
    discarded more than 10 % of the run in 15 % of them (mean 4.9 %), this rule in 1 % (mean
    0.3 %); windows cut short that way are where sub-period slow modes were decided
    (``benchmarks/slow_guard_scan.md``).
    A real transient inflates ``g`` for every start before its end, so ``n_eff`` there falls far
    more than the tolerance and the start still skips it.  At most ``max_evaluations`` candidate
    starts are tried (pymbar's ``nskip``: a resolution of 2 % of the run).  Constant or very
    short series start at 0.
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < MIN_SAMPLES or np.ptp(x) == 0.0 or not np.all(np.isfinite(x)):
        return 0
    tol = EQUILIBRATION_TOLERANCE if tolerance is None else float(tolerance)
    ts = _timeseries()
    nskip = max(1, n // max_evaluations)
    starts = np.arange(0, n - 1, nskip)
    n_eff = np.empty(len(starts))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, t in enumerate(starts):
            try:
                g = ts.statistical_inefficiency(x[t:], fast=False)
            except ts.ParameterError:  # no decorrelation within x[t:] (pymbar's own fallback)
                g = n - t + 1
            n_eff[i] = (n - t + 1) / g
    t0 = int(starts[int(np.argmax(n_eff >= (1.0 - tol) * n_eff.max()))])
    return int(min(t0, n - MIN_SAMPLES))


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
                   sample_interval_ps: float, equilibration_from: Sequence[str],
                   fixed_discard: float = 0.5, t0: int | None = None) -> RunStatistics:
    """Statistics of several series sampled together (same length).

    The production window starts at the latest equilibrated start detected on the series named in
    ``equilibration_from`` (those that are present; series that no check decides, e.g. the
    potential energy), so all observables of a run share one window; when none is present, after
    the fixed fraction ``fixed_discard`` of the run.  ``t0`` (samples) given: that start.
    """
    lengths = {len(v) for v in series.values()}
    if len(lengths) > 1:
        raise ValueError(f"series of one run must have the same length, got {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    used = tuple(k for k in equilibration_from if k in series)
    if t0 is not None:
        pass
    elif used:
        t0 = max(equilibration_start(series[k]) for k in used)
    else:
        t0 = int(math.floor(n * min(max(fixed_discard, 0.0), 1.0)))
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
    dof = min((c.dof for c in components), default=math.inf)
    return SeriesStats(name, components[0].unit, worst.n, worst.t0, worst.g, worst.n_eff, norm,
                       float(np.linalg.norm([c.std for c in components])), sem, worst.sample_interval_ps,
                       all(c.blocking_plateau for c in components), sem_blk, note, dof,
                       replicas=min(c.replicas for c in components),
                       halves_agree=all(c.halves_agree for c in components),
                       slow_ratio=max((c.slow_ratio for c in components), default=math.nan))


def binder_statistics(components: np.ndarray, t0: int, sample_interval_ps: float = math.nan,
                      name: str = "P_binder") -> SeriesStats:
    """Binder cumulant of a vector order parameter over the window ``[t0:]``, normalised to 0 for
    a Gaussian (disordered) distribution and 1 for a fixed-length (ordered) one, whatever the
    number of components d: U = (d + 2) / 2 - (d / 2) <m^4> / <m^2>^2 (m: the per-frame
    vector, ``components`` of shape (n, d)).

    A paraelectric cell whose local dipoles are correlated over the whole (small) cell has a
    large per-frame |P| but a Gaussian distribution of P: U near 0.  A polar cell whose axis turns,
    or whose Pz flips sign, keeps |P| and U near 1.  Error by the jackknife over the batches of
    :func:`batch_means_sem` (Student-t with batches - 1 dof), so time correlation is accounted for.
    """
    m = np.asarray(components, dtype=float)
    m = m.reshape(len(m), -1)
    d = m.shape[1]
    n = len(m)
    nan = math.nan
    y2 = np.sum(m[t0:] ** 2, axis=1)
    if len(y2) < MIN_SAMPLES or not np.all(np.isfinite(y2)) or np.all(y2 == 0):
        return SeriesStats(name, "", n, t0, nan, 0.0, nan, nan, nan, sample_interval_ps, False, nan,
                           "too short or zero")
    y4 = y2**2

    def u(a2: np.ndarray, a4: np.ndarray) -> float:
        return (d + 2) / 2.0 - (d / 2.0) * float(a4.mean()) / float(a2.mean()) ** 2

    g = inefficiency(y2)
    n_eff = len(y2) / g
    nb = int(min(MAX_BATCHES, max(MIN_BATCHES, math.floor(n_eff / BATCH_N_EFF))))
    size = len(y2) // nb
    est = u(y2, y4)
    if size < 2:
        return SeriesStats(name, "", n, t0, g, n_eff, est, nan, nan, sample_interval_ps, False, nan, "too short")
    b2 = y2[len(y2) - nb * size:].reshape(nb, size)
    b4 = y4[len(y4) - nb * size:].reshape(nb, size)
    loo = np.array([u(np.delete(b2, k, axis=0), np.delete(b4, k, axis=0)) for k in range(nb)])
    sem = float(math.sqrt((nb - 1) / nb * np.sum((loo - loo.mean()) ** 2)))
    return SeriesStats(name, "", n, t0, g, n_eff, est, nan, sem, sample_interval_ps, True, sem, None,
                       float(nb - 1), nan, sem, nb, True)


def combine_replicas(stats: Sequence[SeriesStats]) -> SeriesStats:
    """One series' statistics from R independent runs (replicas: same temperature, other seeds).

    Mean: the mean of the replica means.  Two estimates of its error, the larger 95 % half-width
    wins: between replicas, std(replica means) / sqrt(R) with Student-t R - 1 degrees of freedom
    (independent runs: calibrated by construction, whatever the correlation inside a run), and
    within, sqrt(sum sem_i^2) / R with the replicas' summed degrees of freedom.  ``n_eff`` and
    ``n`` and ``t0`` are the shortest run and the latest start (the equilibration gate holds for
    every replica); the blocking plateau must hold in every replica.  A mode slower than one run
    dephases across independent replicas and shows in their spread, which keeps the interval
    calibrated (measured without a guard: 0.6 % of 3-replica sets of 3-ps windows of a 4.5-ps
    oscillation decided with the true mean on the threshold, below the nominal 5 %); the slow-mode
    guard still applies, to the replicas' mean :func:`slow_mode_ratio` (less often tripped by
    noise than any one replica's), so that a window shorter than one period is not decided
    (``benchmarks/calibration.md``).
    """
    stats = list(stats)
    if len(stats) == 1:
        return stats[0]
    r = len(stats)
    means = np.array([s.mean for s in stats])
    nan = math.nan
    first = stats[0]
    if not np.all(np.isfinite(means)):
        return SeriesStats(first.name, first.unit, min(s.n for s in stats), first.t0, nan, 0.0, nan, nan, nan,
                           first.sample_interval_ps, False, nan, "non-finite replica mean", replicas=r)
    mean = float(means.mean())
    sem_between = float(means.std(ddof=1) / math.sqrt(r))
    sems = np.array([s.sem for s in stats])
    sem_within = float(np.sqrt(np.sum(sems**2)) / r)
    dof_within = float(sum(s.dof for s in stats))
    sem, dof = sem_between, float(r - 1)
    if math.isfinite(sem_within) and t_quantile(0.975, dof_within) * sem_within > t_quantile(0.975, dof) * sem:
        sem, dof = sem_within, dof_within
    notes = {s.note for s in stats if s.note}
    note = None if not notes else ("constant" if notes == {"constant"} else "; ".join(sorted(notes)))
    if note == "constant" and sem_between == 0.0:
        sem, dof = 0.0, math.inf
    n_eff = float(sum(s.n_eff for s in stats if math.isfinite(s.n_eff)))
    ratios = [s.slow_ratio for s in stats]
    if all(math.isfinite(x) for x in ratios):  # the guard on the replicas' mean ratio
        slow = float(np.mean(ratios))
        stationary = slow <= SLOW_POWER_LIMIT
    else:  # statistics stored without the ratio: every replica's own verdict
        slow, stationary = math.nan, all(s.halves_agree for s in stats)
    crests = [s.crest_z for s in stats]
    crest = float(np.sum(crests) / math.sqrt(r)) if all(math.isfinite(x) for x in crests) else math.nan
    return SeriesStats(first.name, first.unit, int(min(s.n for s in stats)), max(s.t0 for s in stats),
                       float(np.mean([s.g for s in stats])), n_eff, mean,
                       float(np.sqrt(np.mean([s.std**2 for s in stats]))), sem, first.sample_interval_ps,
                       all(s.blocking_plateau for s in stats), sem_within, note, dof, sem_within, sem_between, r,
                       stationary, r, slow_ratio=slow, crest_z=crest)
