"""Deciding "above or below a threshold" from a mean and its standard error: three outcomes.

With mean m, standard error s with ``dof`` degrees of freedom and a two-sided confidence level
(``[statistics]`` in ``reference_data/pto.toml``; q = the Student-t quantile t_dof(1 - alpha/2),
the normal one for infinite dof): the quantity is *above* the threshold when m - q s > threshold,
*below* when m + q s < threshold, and *undecided* otherwise.  A run that has not equilibrated,
has too few effectively independent samples (n_eff < ``min_n_eff``), whose error estimate did
not reach a blocking plateau, or whose window holds a mode slower than about half of itself
(:func:`pto_checks.statistics.slow_power_ratio`) is undecided whatever m is: its error bar
cannot be trusted.  A check maps the side it wants to :class:`Outcome` pass / fail and *undecided* to
inconclusive, and says what would decide it: the extra simulation time at that temperature,
estimated from the current standard error and the rate of independent samples (n_eff per ps):
the error falls as 1/sqrt(n_eff), so reaching s' = |m - threshold| / z needs
n_eff (s / s')^2 independent samples.

Looking at the data repeatedly (sequential MD) inflates false decisions; ``looks`` > 1 applies a
Bonferroni split of alpha over the planned number of looks (a stricter level per look), and the
interval is labelled with that per-look level (e.g. 98.75 % for 95 % over 4 looks).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


class Outcome(str, Enum):
    """Outcome of a check: ``pass``, ``fail`` or ``inconclusive`` (never counted as a pass)."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class Side(str, Enum):
    """Where a quantity lies relative to a threshold, at the stated confidence."""

    ABOVE = "above"
    BELOW = "below"
    UNDECIDED = "undecided"


def level_text(level: float) -> str:
    """A confidence level as a percentage, as precise as it is ('95%', '98.75%')."""
    return f"{100.0 * level:.4g}%"


@dataclass(frozen=True)
class Interval:
    """Two-sided confidence interval ``[low, high]`` at ``level`` (e.g. 0.95), in ``unit``."""

    low: float
    high: float
    level: float
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.low:.4g}, {self.high:.4g}]{' ' + self.unit if self.unit else ''} ({level_text(self.level)})"


@dataclass(frozen=True)
class StatisticsSettings:
    """The decision rule's settings (``[statistics]`` of ``reference_data/pto.toml``)."""

    confidence_level: float = 0.95
    min_n_eff: float = 10.0
    require_plateau: bool = True
    max_discarded_fraction: float = 0.5

    def z(self, looks: int = 1) -> float:
        """Two-sided normal quantile for the level, alpha split over ``looks`` (Bonferroni)."""
        from statistics import NormalDist

        return NormalDist().inv_cdf(1.0 - self.alpha(looks) / 2.0)

    def alpha(self, looks: int = 1) -> float:
        """Two-sided error rate per look (Bonferroni over ``looks``)."""
        return (1.0 - self.confidence_level) / max(1, int(looks))

    def level(self, looks: int = 1) -> float:
        """The confidence level of one look's interval (the stated level when ``looks`` is 1)."""
        return 1.0 - self.alpha(looks)

    def quantile(self, looks: int = 1, dof: float = math.inf) -> float:
        """Two-sided Student-t quantile for ``dof`` degrees of freedom at the level per look."""
        from pto_checks.statistics import t_quantile

        return t_quantile(1.0 - self.alpha(looks) / 2.0, dof)


def statistics_settings() -> StatisticsSettings:
    """Settings from ``reference_data/pto.toml`` (``[statistics]``)."""
    from pto_checks.reference import load_reference

    s = load_reference()["statistics"]
    return StatisticsSettings(float(s["confidence_level"]), float(s["min_n_eff"]),
                              bool(s["require_plateau"]), float(s["max_discarded_fraction"]))


@dataclass(frozen=True)
class ThresholdDecision:
    """Where ``mean`` lies relative to ``threshold``.

    ``interval``: the confidence interval; ``reason``: why undecided (or ''); ``extra_ps``: the
    estimated extra simulation time (ps) that would decide it (None when not estimable, inf when
    the mean sits on the threshold); ``temperature_K``: where (for the message).
    """

    side: Side
    mean: float
    sem: float
    threshold: float
    interval: Interval
    n_eff: float
    reason: str = ""
    extra_ps: float | None = None
    temperature_K: float | None = None

    def outcome(self, want: Side) -> Outcome:
        """PASS when on the side ``want``, FAIL on the other, INCONCLUSIVE when undecided."""
        if self.side is Side.UNDECIDED:
            return Outcome.INCONCLUSIVE
        return Outcome.PASS if self.side is want else Outcome.FAIL

    def needs(self) -> str:
        """What would decide it, e.g. 'needs about 40 more ps at 900 K' ('' when decided)."""
        if self.side is not Side.UNDECIDED:
            return ""
        at = f" at {self.temperature_K:.0f} K" if self.temperature_K is not None else ""
        if self.extra_ps is None:
            return f"{self.reason}: a longer run{at} is needed"
        if math.isinf(self.extra_ps):
            return f"{self.reason}: the mean sits on the threshold{at}; no run length decides it"
        return f"{self.reason}: needs about {_round_ps(self.extra_ps)} more ps{at}"

    def describe(self, what: str, unit: str = "", digits: int = 4) -> str:
        """'what = m +- s (95 % CI [lo, hi]) above/below/undecided vs threshold t'."""
        u = f" {unit}" if unit else ""
        head = (f"{what} = {self.mean:.{digits}f} +- {self.sem:.{digits}f}{u} "
                f"({level_text(self.interval.level)} CI "
                f"[{self.interval.low:.{digits}f}, {self.interval.high:.{digits}f}], "
                f"n_eff {self.n_eff:.0f})")
        rel = {Side.ABOVE: "above", Side.BELOW: "below", Side.UNDECIDED: "undecided vs"}[self.side]
        tail = f" {rel} {self.threshold:g}{u}"
        return head + tail + (f" [{self.needs()}]" if self.side is Side.UNDECIDED else "")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["side"] = self.side.value
        return d


def _round_ps(x: float) -> str:
    if x < 10:
        return f"{max(x, 0.1):.1f}"
    mag = 10 ** (len(str(int(x))) - 2)
    return f"{math.ceil(x / mag) * mag:.0f}"


def decide_threshold(mean: float, sem: float, threshold: float, *, n_eff: float = math.inf,
                     n_eff_per_ps: float = math.nan, equilibrated: bool = True, plateau: bool = True,
                     settings: StatisticsSettings | None = None, looks: int = 1,
                     temperature_K: float | None = None, unit: str = "", dof: float = math.inf,
                     stationary: bool = True) -> ThresholdDecision:
    """Decide whether ``mean`` (standard error ``sem``, ``dof`` degrees of freedom) is above or
    below ``threshold``.

    ``n_eff``: effectively independent samples behind the mean; ``n_eff_per_ps``: how fast more
    simulation adds them (for the estimate of the time that would decide); ``equilibrated``,
    ``plateau``: whether the run equilibrated and the blocking error reached its plateau;
    ``stationary``: whether the window is free of modes slower than about half of it.
    """
    settings = settings or statistics_settings()
    z = settings.quantile(looks, dof)
    finite = math.isfinite(mean) and math.isfinite(sem)
    lo, hi = (mean - z * sem, mean + z * sem) if finite else (math.nan, math.nan)
    interval = Interval(lo, hi, settings.level(looks), unit)

    def undecided(reason: str, extra: float | None) -> ThresholdDecision:
        return ThresholdDecision(Side.UNDECIDED, mean, sem, threshold, interval, n_eff, reason, extra,
                                 temperature_K)

    if not math.isfinite(mean):
        return undecided("no finite mean", None)
    rate = n_eff_per_ps if n_eff_per_ps and math.isfinite(n_eff_per_ps) and n_eff_per_ps > 0 else None
    short_by = (settings.min_n_eff - n_eff) if math.isfinite(n_eff) else 0.0
    extra_min = short_by / rate if (rate and short_by > 0) else None
    if not math.isfinite(sem):
        return undecided("no error estimate (too few samples)", extra_min)
    if not equilibrated:
        return undecided("not equilibrated (the observable still drifts)", None)
    if short_by > 0:
        return undecided(f"too few independent samples (n_eff {n_eff:.1f} < {settings.min_n_eff:g})", extra_min)
    if settings.require_plateau and not plateau:
        return undecided("the error estimate has not converged (no blocking plateau)", None)
    if not stationary:
        return undecided("a mode slower than half the production window (an oscillation it does not span "
                         "twice, or a drift)", None)
    if lo > threshold:
        return ThresholdDecision(Side.ABOVE, mean, sem, threshold, interval, n_eff, "", None, temperature_K)
    if hi < threshold:
        return ThresholdDecision(Side.BELOW, mean, sem, threshold, interval, n_eff, "", None, temperature_K)
    gap = abs(mean - threshold)
    extra: float | None
    if gap == 0:
        extra = math.inf
    elif rate is None or not math.isfinite(n_eff):
        extra = None
    else:
        target_sem = gap / z
        extra = max(n_eff * ((sem / target_sem) ** 2 - 1.0), 0.0) / rate
        if extra_min is not None:
            extra = max(extra, extra_min)
    return undecided(f"the {level_text(interval.level)} interval contains the threshold", extra)


def decide_series(stats: Any, threshold: float, *, offset: float = 0.0, scale: float = 1.0,
                  settings: StatisticsSettings | None = None, looks: int = 1,
                  temperature_K: float | None = None) -> ThresholdDecision:
    """:func:`decide_threshold` for a :class:`pto_checks.statistics.SeriesStats` (or its dict),
    on ``scale * (mean + offset)`` (e.g. offset -1 for c/a - 1, scale -1 to flip a sign)."""
    from pto_checks.statistics import SeriesStats

    if isinstance(stats, dict):
        stats = SeriesStats(**stats)
    settings = settings or statistics_settings()
    equilibrated = stats.n > 0 and (stats.t0 <= settings.max_discarded_fraction * stats.n)
    return decide_threshold(scale * (stats.mean + offset), abs(scale) * stats.sem, threshold,
                            n_eff=stats.n_eff, n_eff_per_ps=stats.n_eff_per_ps, equilibrated=equilibrated,
                            plateau=stats.blocking_plateau, settings=settings, looks=looks,
                            temperature_K=temperature_K, unit=stats.unit, dof=stats.dof,
                            stationary=stats.halves_agree)


def combine(outcomes: Iterable[Outcome]) -> Outcome:
    """All must pass: any FAIL fails, else any INCONCLUSIVE is inconclusive, else PASS."""
    outs = list(outcomes)
    if Outcome.FAIL in outs:
        return Outcome.FAIL
    if Outcome.INCONCLUSIVE in outs:
        return Outcome.INCONCLUSIVE
    return Outcome.PASS
