"""Deciding "above or below a threshold" from a mean and its standard error: three outcomes.

With mean m, standard error s with ``dof`` degrees of freedom and a two-sided confidence level
(``[statistics]`` in ``reference_data/pto.toml``; q = the Student-t quantile t_dof(1 - alpha/2),
the normal one for infinite dof): the quantity is *above* the threshold when m - q s > threshold,
*below* when m + q s < threshold, and *undecided* otherwise.  A run that has not equilibrated,
has too few effectively independent samples (n_eff < ``min_n_eff``), whose error estimate did
not reach a blocking plateau, or whose window holds a mode slower than about half of itself
(:func:`pto_checks.statistics.slow_mode_ratio`)
is undecided whatever m is: its error bar
cannot be trusted.  A check maps the side it wants to :class:`Outcome` pass / fail and *undecided* to
inconclusive, and says what would decide it: the extra simulation time at that temperature,
estimated from the current standard error and the rate of independent samples (n_eff per ps):
the error falls as 1/sqrt(n_eff), so reaching s' = |m - threshold| / z needs
n_eff (s / s')^2 independent samples.

A run that has not equilibrated still decides the comparisons its drift cannot change: when the
whole reach of the drift (:class:`pto_checks.drift.DriftBound`: the last half's frames and its trend
continued for another run as long, at the same z; for an equilibrated window that holds a slow
mode, which turns back, the range of its batch means) lies on one side of the threshold, that side
is decided (``basis`` "drift"); otherwise it stays undecided and the message estimates the run length
that would put the equilibrated start in the first ``max_discarded_fraction`` of the run.

Every undecided comparison names the one step that would decide it (``step``): a longer run (with
its estimated extra length in ps at that temperature), a larger cell (a per-frame rule that needs
more cells), or nothing (the mean sits on the threshold); no message prints a NaN.

Looking at the data repeatedly (sequential MD) inflates false decisions; ``looks`` > 1 applies a
Bonferroni split of alpha over the planned number of looks (a stricter level per look), and the
interval is labelled with that per-look level (e.g. 98.75 % for 95 % over 4 looks).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pto_checks.drift import DriftBound


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
    basis: str = "interval"
    at_least: bool = False
    step: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ThresholdDecision:
        """Inverse of :meth:`to_dict` (fields missing from older results take their defaults)."""
        iv = d.get("interval") or {}
        nan = math.nan
        return cls(Side(d["side"]), _num(d.get("mean")), _num(d.get("sem")), _num(d.get("threshold")),
                   Interval(_num(iv.get("low")), _num(iv.get("high")), iv.get("level", 0.95), iv.get("unit", "")),
                   _num(d.get("n_eff", nan)), d.get("reason", ""), d.get("extra_ps"), d.get("temperature_K"),
                   d.get("basis", "interval"), bool(d.get("at_least", False)), d.get("step", ""))

    def outcome(self, want: Side) -> Outcome:
        """PASS when on the side ``want``, FAIL on the other, INCONCLUSIVE when undecided."""
        if self.side is Side.UNDECIDED:
            return Outcome.INCONCLUSIVE
        return Outcome.PASS if self.side is want else Outcome.FAIL

    def needs(self) -> str:
        """The one step that would decide it, e.g. 'needs about 40 more ps at 900 K', 'a larger cell
        ...' ('' when decided)."""
        if self.side is not Side.UNDECIDED:
            return ""
        if self.step:
            return f"{self.reason}: {self.step}"
        at = f" at {self.temperature_K:.0f} K" if _finite(self.temperature_K) else ""
        if self.extra_ps is None or (isinstance(self.extra_ps, float) and math.isnan(self.extra_ps)):
            return f"{self.reason}: a longer run{at} is needed"
        if math.isinf(self.extra_ps):
            return f"{self.reason}: the mean sits on the threshold{at}; no run length decides it"
        least = "at least " if self.at_least else ""
        return f"{self.reason}: needs {least}about {_round_ps(self.extra_ps)} more ps{at}"

    def describe(self, what: str, unit: str = "", digits: int = 4) -> str:
        """'what = m +- s (95 % CI [lo, hi]) above/below/undecided vs threshold t'; a quantity decided
        on its drift's reach says so; no number that is not finite is printed."""
        u = f" {unit}" if unit else ""
        iv = self.interval
        thr = f" {self.threshold:g}{u}" if _finite(self.threshold) else ""
        if not _finite(self.mean):
            return f"{what}: not measured [{self.needs() or self.reason}]"
        if self.basis == "drift":
            head = (f"{what} = {self.mean:.{digits}f}{u}, still drifting: its reach over another run as long "
                    f"({level_text(iv.level)}) is [{iv.low:.{digits}f}, {iv.high:.{digits}f}]")
        elif _finite(self.sem) and _finite(iv.low) and _finite(iv.high):
            neff = f", n_eff {self.n_eff:.0f}" if _finite(self.n_eff) else ""
            head = (f"{what} = {self.mean:.{digits}f} +- {self.sem:.{digits}f}{u} "
                    f"({level_text(iv.level)} CI [{iv.low:.{digits}f}, {iv.high:.{digits}f}]{neff})")
        else:
            head = f"{what} = {self.mean:.{digits}f}{u} (no error estimate)"
        rel = {Side.ABOVE: "above", Side.BELOW: "below", Side.UNDECIDED: "undecided vs"}[self.side]
        return head + f" {rel}{thr}" + (f" [{self.needs()}]" if self.side is Side.UNDECIDED else "")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["side"] = self.side.value
        return d


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else math.nan


def _round_ps(x: float) -> str:
    if x < 10:
        return f"{max(x, 0.1):.1f}"
    mag = 10 ** (len(str(int(x))) - 2)
    return f"{math.ceil(x / mag) * mag:.0f}"


def _twice_the_window(production_ps: float) -> tuple[str, float | None]:
    """(" (a window of at least 2w ps)", w): what decides a window of w ps that holds a slow mode
    or sits on a crest (its period is only bounded below by the window); ("", None) without one."""
    if math.isfinite(production_ps) and production_ps > 0:
        return f" (a window of at least {_round_ps(2 * production_ps)} ps)", production_ps
    return "", None


def decide_threshold(mean: float, sem: float, threshold: float, *, n_eff: float = math.inf,
                     n_eff_per_ps: float = math.nan, equilibrated: bool = True, plateau: bool = True,
                     settings: StatisticsSettings | None = None, looks: int = 1,
                     temperature_K: float | None = None, unit: str = "", dof: float = math.inf,
                     stationary: bool = True, drift: DriftBound | None = None, t0_ps: float = math.nan,
                     production_ps: float = math.nan, crest_z: float = math.nan) -> ThresholdDecision:
    """Decide whether ``mean`` (standard error ``sem``, ``dof`` degrees of freedom) is above or
    below ``threshold``.

    ``n_eff``: effectively independent samples behind the mean; ``n_eff_per_ps``: how fast more
    simulation adds them (for the estimate of the time that would decide); ``equilibrated``,
    ``plateau``: whether the run equilibrated and the blocking error reached its plateau;
    ``stationary``: whether the window is free of modes slower than about half of it.
    ``drift``: the reach of a series that has not equilibrated or is not stationary (decides when
    the threshold lies outside it); ``t0_ps``, ``production_ps``: the equilibrated start and the
    window after it (for the estimate of the run length that would decide).
    """
    settings = settings or statistics_settings()
    z = settings.quantile(looks, dof)
    finite = math.isfinite(mean) and math.isfinite(sem)
    lo, hi = (mean - z * sem, mean + z * sem) if finite else (math.nan, math.nan)
    interval = Interval(lo, hi, settings.level(looks), unit)

    def undecided(reason: str, extra: float | None, at_least: bool = False) -> ThresholdDecision:
        return ThresholdDecision(Side.UNDECIDED, mean, sem, threshold, interval, n_eff, reason, extra,
                                 temperature_K, at_least=at_least)

    if not math.isfinite(mean):
        return undecided("no finite mean", None)
    rate = n_eff_per_ps if n_eff_per_ps and math.isfinite(n_eff_per_ps) and n_eff_per_ps > 0 else None
    short_by = (settings.min_n_eff - n_eff) if math.isfinite(n_eff) else 0.0
    extra_min = short_by / rate if (rate and short_by > 0) else None
    run_ps = t0_ps + production_ps
    if not math.isfinite(sem):
        # too short for an error estimate: at least twice as long (a bound, not an estimate)
        grow = production_ps if math.isfinite(production_ps) and production_ps > 0 else None
        return undecided("no error estimate (too few samples)", extra_min or grow, at_least=extra_min is None)
    reach_checked = (not equilibrated or not stationary) and drift is not None and drift.n_eff >= settings.min_n_eff
    crossing = " and its drift could cross the threshold"
    if (not equilibrated or not stationary) and drift is not None and not reach_checked:
        crossing = f"; its trend too short to bound it (n_eff {drift.n_eff:.1f} < {settings.min_n_eff:g})"
    if reach_checked:
        # the observable still moves: decided where the whole reach of its drift is on one side
        # an equilibrated window holding a slow mode oscillates (the range of its slow part); a run
        # that has not equilibrated drifts on (its trend continued)
        low, high = drift.reach(settings.quantile(looks, drift.n_eff - 2.0), turning=equilibrated and not stationary)
        if low > threshold or high < threshold:
            return ThresholdDecision(Side.ABOVE if low > threshold else Side.BELOW, mean, sem, threshold,
                                     Interval(low, high, settings.level(looks), unit), n_eff, "", None,
                                     temperature_K, basis="drift")
    if not equilibrated:
        # the start must fall in the first max_discarded_fraction of the run, with min_n_eff after it
        # (a lower bound: a series still drifting at the end may start later than detected)
        extra = None
        if math.isfinite(run_ps) and math.isfinite(t0_ps):
            need = t0_ps / settings.max_discarded_fraction
            if rate:
                need = max(need, t0_ps + settings.min_n_eff / rate)
            extra = max(need - run_ps, 0.0) or None
        return undecided("not equilibrated (the observable still drifts" + (crossing if drift is not None else "")
                         + ")", extra, at_least=True)
    if short_by > 0:
        return undecided(f"too few independent samples (n_eff {n_eff:.1f} < {settings.min_n_eff:g})", extra_min)
    if settings.require_plateau and not plateau:
        # Lee-Needs-Drummond finds a plateau once the window holds about 16 g samples (blocks of
        # 2 g and more, at least 4 of them): at least that, or twice the window
        need = None
        if rate and math.isfinite(production_ps) and production_ps > 0:
            need = max(16.0 / rate - production_ps, production_ps)
        return undecided("the error estimate has not converged (no blocking plateau)", need, at_least=True)
    if not stationary:
        # the slow mode's period is not resolved, only bounded below by the window: twice the window
        window, doubling = _twice_the_window(production_ps)
        return undecided("a mode slower than half the production window (an oscillation it does not span "
                         "twice, a slope or a crest, or a drift"
                         + ((", that could cross the threshold)" if reach_checked else crossing + ")")
                            if drift is not None else ")") + window,
                         doubling, at_least=True)
    if lo > threshold or hi < threshold:
        from pto_checks.statistics import CREST_Z_LIMIT

        shape = "crest" if lo > threshold else "trough"
        if (crest_z < -CREST_Z_LIMIT) if lo > threshold else (crest_z > CREST_Z_LIMIT):
            # the window may sit on the top (bottom) of an oscillation it does not span
            window, doubling = _twice_the_window(production_ps)
            end = "top" if lo > threshold else "bottom"
            return undecided(f"the window sits on a {shape} (z {crest_z:+.1f}): the {end} "
                             "of an oscillation it may not span" + window,
                             doubling, at_least=True)
        return ThresholdDecision(Side.ABOVE if lo > threshold else Side.BELOW, mean, sem, threshold, interval, n_eff,
                                 "", None, temperature_K)
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
    from pto_checks.drift import DriftBound
    from pto_checks.statistics import SeriesStats

    if isinstance(stats, dict):
        stats = SeriesStats(**{**stats, "drift": DriftBound.from_dict(stats.get("drift"))})
    settings = settings or statistics_settings()
    equilibrated = stats.n > 0 and (stats.t0 <= settings.max_discarded_fraction * stats.n)
    drift = stats.drift
    if drift is not None and (scale != 1.0 or offset != 0.0):
        drift = _transformed(drift, offset, scale)
    return decide_threshold(scale * (stats.mean + offset), abs(scale) * stats.sem, threshold,
                            n_eff=stats.n_eff, n_eff_per_ps=stats.n_eff_per_ps, equilibrated=equilibrated,
                            plateau=stats.blocking_plateau, settings=settings, looks=looks,
                            temperature_K=temperature_K, unit=stats.unit, dof=stats.dof,
                            stationary=stats.halves_agree, drift=drift, t0_ps=stats.t0_ps,
                            production_ps=stats.production_ps,
                            crest_z=math.copysign(1.0, scale) * getattr(stats, "crest_z", math.nan))


def _transformed(d: DriftBound, offset: float, scale: float) -> DriftBound:
    """The bound of ``scale * (x + offset)``."""
    from dataclasses import replace

    lo, hi = sorted((scale * (d.frame_min + offset), scale * (d.frame_max + offset)))
    span_lo, span_hi = sorted((scale * (d.span_min + offset), scale * (d.span_max + offset)))
    return replace(d, frame_min=lo, frame_max=hi, end=scale * (d.end + offset), end_sem=abs(scale) * d.end_sem,
                   slope_per_ps=scale * d.slope_per_ps, slope_sem_per_ps=abs(scale) * d.slope_sem_per_ps,
                   span_min=span_lo, span_max=span_hi, span_sem=abs(scale) * d.span_sem)


def combine(outcomes: Iterable[Outcome]) -> Outcome:
    """All must pass: any FAIL fails, else any INCONCLUSIVE is inconclusive, else PASS."""
    outs = list(outcomes)
    if Outcome.FAIL in outs:
        return Outcome.FAIL
    if Outcome.INCONCLUSIVE in outs:
        return Outcome.INCONCLUSIVE
    return Outcome.PASS
