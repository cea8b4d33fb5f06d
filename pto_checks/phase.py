"""The phase of each temperature, and the Tc bracket: the one rule every reader uses.

Rows of a sweep (their ``phase``), :attr:`pto_checks.md.sweep.Sweep.tc`, the looks of sequential
MD (:mod:`pto_checks.md.sequential`), the report's markers and figures, results.json, the
regression gate's Tc and every dynamic verdict read the phase decided here, from confidence
intervals (:mod:`pto_checks.decisions`) on the statistics a row carries
(:func:`pto_checks.analysis.summarize_run`).  A temperature whose intervals do not decide is
:attr:`Phase.UNDECIDED` everywhere, never drawn or counted as cubic.

Public API
----------
``Phase``
    str enum: ``tetragonal``, ``supertetragonal``, ``cubic``, ``molten``, ``unstable``,
    ``undecided``; properties ``polar`` (tetragonal or supertetragonal) and ``decided``.
``PhaseDecision``
    dataclass: ``phase`` (:class:`Phase`), ``decisions`` (tuple of
    :class:`~pto_checks.decisions.ThresholdDecision`, Lindemann and order first), ``text`` (one
    line, e.g. '800 K: cubic (...)'), ``crystal`` (:class:`~pto_checks.decisions.Outcome` of the
    melting test), ``decisive`` (the decision that best shows the phase, or None); ``to_dict()``.
``decide_phase(row, ensemble, settings=None) -> PhaseDecision``
    NPT: supertetragonal when c/a is above ``supertetragonal_min``; tetragonal when every frame
    is polar (per-frame polar order, per-frame |P| and the Binder cumulant of P above their
    thresholds; cells of at least ``min_cells_polar_order``) or the time-averaged c/a - 1 is
    above ``tetragonal_min``; cubic when any of the three is below and c/a - 1 is not above.
    NVT (the imposed c/a pins the axis): polar when the per-frame |Pz| (series ``Pz_frame_abs``)
    is above the polar threshold and the Binder cumulant of Pz above ``min_binder``, cubic when
    either is below, so a Pz that flips sign while every frame is polar stays polar, and a
    Gaussian (disordered) Pz is not.  Molten / unstable from :func:`crystal_decision`; anything
    else undecided.
``crystal_decision(row, melt=None, settings=None) -> (Outcome, [ThresholdDecision], text)``
``row_decision(row, name, threshold, *, offset=0, scale=1, settings=None, looks=1)``
    -> ThresholdDecision | None: one series of a row against a threshold, at the row's level
    per look (Bonferroni over a sequential run's looks).
``undecided_decision(row, what) -> ThresholdDecision``
``polar_order_decision(row, settings=None) -> ThresholdDecision | None``
``TcBracket``
    dataclass: ``low``, ``high`` (K; the highest polar and the first cubic temperature above
    it), ``tc`` (midpoint), ``resolution`` (half-width), ``status`` (``bracketed``,
    ``never_polar``, ``never_cubic``, ``undecided``, ``unbounded``); ``to_dict()``.
``tc_bracket(temperatures, phases) -> TcBracket``
    any order of the temperatures (sorted here); a repeated temperature is a ValueError.
``sweep_phases(rows, ensemble, settings=None) -> list[PhaseDecision]``
``sweep_tc(rows, ensemble, settings=None) -> dict``
    what ``Sweep.tc`` and results.json store: ``tc``, ``resolution``, ``bracket_K``,
    ``status``, ``level``, ``method``.
``classify_rows(rows, ensemble, settings=None) -> list[dict]``
    copies of the rows with ``phase`` (the :class:`Phase` value) and ``phase_text``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from pto_checks.decisions import (
    Interval,
    Outcome,
    Side,
    StatisticsSettings,
    ThresholdDecision,
    combine,
    decide_series,
    statistics_settings,
)
from pto_checks.reference import tolerance


class Phase(str, Enum):
    """Phase of one temperature, decided from confidence intervals (or undecided)."""

    TETRAGONAL = "tetragonal"
    SUPERTETRAGONAL = "supertetragonal"
    CUBIC = "cubic"
    MOLTEN = "molten"
    UNSTABLE = "unstable"
    UNDECIDED = "undecided"

    @property
    def polar(self) -> bool:
        return self in (Phase.TETRAGONAL, Phase.SUPERTETRAGONAL)

    @property
    def decided(self) -> bool:
        return self is not Phase.UNDECIDED

    @classmethod
    def of(cls, value: Any) -> Phase:
        """A :class:`Phase` from a stored value (None: undecided)."""
        if value is None:
            return cls.UNDECIDED
        return cls(value)


@dataclass(frozen=True)
class PhaseDecision:
    """The phase of one temperature with the comparisons that decided it."""

    phase: Phase
    decisions: tuple[ThresholdDecision, ...]
    text: str
    crystal: Outcome
    decisive: ThresholdDecision | None = None
    temperature_K: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase.value, "text": self.text, "crystal": self.crystal.value,
                "temperature_K": self.temperature_K, "decisions": [d.to_dict() for d in self.decisions],
                "decisive": self.decisive.to_dict() if self.decisive else None}


def row_decision(row: dict[str, Any], name: str, threshold: float, *, offset: float = 0.0,
                 scale: float = 1.0, settings: StatisticsSettings | None = None,
                 looks: int = 1) -> ThresholdDecision | None:
    """Where ``scale * (mean + offset)`` of the series ``name`` of one row lies relative to
    ``threshold`` (None when the row carries no statistics for it).  A row of a sequential run
    (``looks`` > 1) is decided at the level per look of its rule (Bonferroni over its looks)."""
    st = (row.get("stats") or {}).get("series", {}).get(name)
    if st is None:
        return None
    looks = max(looks, int(row.get("looks", 1)))
    return decide_series(st, threshold, offset=offset, scale=scale, settings=settings, looks=looks,
                         temperature_K=row.get("T_K"))


def undecided_decision(row: dict[str, Any], what: str) -> ThresholdDecision:
    """An undecided comparison for a quantity the row has no statistics for (a run too short to
    sample it, or one recorded without it): a run of the current code, long enough, decides it."""
    nan = math.nan
    at = f" at {row['T_K']:.0f} K" if isinstance(row.get("T_K"), (int, float)) else ""
    return ThresholdDecision(Side.UNDECIDED, nan, nan, nan,
                             Interval(nan, nan, statistics_settings().confidence_level),
                             nan, f"no statistics for {what}", None, row.get("T_K"),
                             step=f"a run{at} that samples it (rerun with this version of pto-checks)")


def _drifted_past(d: ThresholdDecision, limit: float, above: bool) -> bool:
    """Undecided only because the series still drifts (not equilibrated, a mode slower than the
    window, or so slow that it holds few independent samples), with its whole interval beyond
    ``limit``."""
    if d.side is not Side.UNDECIDED or not d.reason.startswith(("not equilibrated", "a mode slower", "too few")):
        return False
    iv = d.interval
    return bool(math.isfinite(iv.low) and (iv.low > limit if above else iv.high < limit))


def crystal_decision(row: dict[str, Any], melt: dict[str, Any] | None = None,
                     settings: StatisticsSettings | None = None) -> tuple[Outcome, list[ThresholdDecision], str]:
    """Is this temperature a crystal?  PASS: Lindemann ratio below and order parameter above
    their limits at the confidence level; FAIL: a blow-up, or either on the wrong side; else
    INCONCLUSIVE.  Returns (outcome, decisions, text)."""
    melt = melt or tolerance("melting")
    if row.get("failure"):
        f = row["failure"]
        return Outcome.FAIL, [], f"UNSTABLE at {row['T_K']:.0f} K ({f['reason']}, step {f['step']})"
    lind = (row_decision(row, "lindemann", melt["max_lindemann"], settings=settings)
            or undecided_decision(row, "lindemann"))
    order = row_decision(row, "order", melt["min_order"], settings=settings) or undecided_decision(row, "order")
    out = combine([lind.outcome(Side.BELOW), order.outcome(Side.ABOVE)])
    # a run starts from the perfect crystal (Lindemann 0, order 1): a drift that has already carried
    # the whole interval past the melting limit is melting in progress, not a reason to wait (a
    # liquid's Lindemann ratio never stops growing, so "not equilibrated", a slow mode or a tiny
    # n_eff would hide it forever)
    if out is Outcome.INCONCLUSIVE and (_drifted_past(lind, melt["max_lindemann"], True)
                                        or _drifted_past(order, melt["min_order"], False)):
        out = Outcome.FAIL
    text = {Outcome.PASS: f"crystal at {row['T_K']:.0f} K",
            Outcome.FAIL: f"MOLTEN at {row['T_K']:.0f} K",
            Outcome.INCONCLUSIVE: f"undecided melting at {row['T_K']:.0f} K"}[out]
    if out is not Outcome.PASS:
        text += f" ({lind.describe('Lindemann', digits=3)}; {order.describe('order', digits=3)})"
    return out, [lind, order], text


def polar_order_decision(row: dict[str, Any], settings: StatisticsSettings | None = None
                         ) -> ThresholdDecision | None:
    """Axis-free polar order of one row: the per-frame alignment ``|P| / mean local |p|``
    (series ``P_alignment``) against :func:`pto_checks.analysis.polar_order_threshold` for the
    row's cell size.  None when the row has no such statistics or no cell size, or its cell is
    smaller than ``min_cells_polar_order`` (local dipoles sharing most of their atoms)."""
    from pto_checks.analysis import n_cells_of, polar_order_threshold

    n = n_cells_of(row)
    thr = tolerance("phase")
    if n is None or n < thr["min_cells_polar_order"]:
        return None
    return row_decision(row, "P_alignment", polar_order_threshold(n, thr["min_polar_order"]), settings=settings)


def decide_phase(row: dict[str, Any], ensemble: str, settings: StatisticsSettings | None = None
                 ) -> PhaseDecision:
    """The phase of one row (see the module docstring for the rule)."""
    from pto_checks.analysis import polar_threshold

    thr = tolerance("phase")
    t = row["T_K"]
    melt_out, decisions, melt_text = crystal_decision(row, settings=settings)
    if melt_out is Outcome.FAIL:
        phase = Phase.UNSTABLE if row.get("failure") else Phase.MOLTEN
        return PhaseDecision(phase, tuple(decisions), f"{t:.0f} K: {phase.value} ({melt_text})", melt_out,
                             None, t)
    p_thr = polar_threshold(thr, row.get("born_convention"))
    decisive: ThresholdDecision | None
    if ensemble == "npt":
        sup = row_decision(row, "c_over_a", thr["supertetragonal_min"], settings=settings) \
            or undecided_decision(row, "c/a")
        tet = row_decision(row, "c_over_a", thr["tetragonal_min"], offset=-1.0, settings=settings) \
            or undecided_decision(row, "c/a")
        order = polar_order_decision(row, settings=settings)
        frame_p: ThresholdDecision | None = None
        binder: ThresholdDecision | None = None
        if order is None:  # small cell or no per-frame statistics: the time-averaged c/a alone decides
            polar, nonpolar = False, tet.side is Side.BELOW
            decisions += [tet, sup]
        else:
            frame_p = row_decision(row, "P_frame_abs", p_thr, settings=settings) \
                or undecided_decision(row, "per-frame |P|")
            binder = row_decision(row, "P_binder", thr["min_binder"], settings=settings) \
                or undecided_decision(row, "Binder cumulant of P")
            polar = all(d.side is Side.ABOVE for d in (order, frame_p, binder))
            nonpolar = any(d.side is Side.BELOW for d in (order, frame_p, binder))
            decisions += [order, tet, sup, frame_p, binder]
        if sup.side is Side.ABOVE:
            phase = Phase.SUPERTETRAGONAL
        elif (polar or tet.side is Side.ABOVE) and sup.side is Side.BELOW:
            phase = Phase.TETRAGONAL
        elif nonpolar and tet.side is not Side.ABOVE:
            phase = Phase.CUBIC
        else:
            phase = Phase.UNDECIDED
        decisive = sup if phase is Phase.SUPERTETRAGONAL else (
            order if order is not None and math.isfinite(order.mean) else tet)
        if phase is Phase.SUPERTETRAGONAL:
            desc = sup.describe("c/a")
        elif order is None or frame_p is None or binder is None:  # the c/a rule of small cells: what it compared
            desc = f"{tet.describe('c/a - 1')}; {sup.describe('c/a')}"
        else:
            desc = (f"{order.describe('polar order |P|/<|p|>', digits=3)}; "
                    f"{frame_p.describe('per-frame |P|', 'C/m^2', 3)}; {binder.describe('Binder U of P', digits=2)}; "
                    f"{tet.describe('c/a - 1')}" + (f"; {sup.describe('c/a')}" if sup.side is not Side.BELOW else ""))
    else:
        pol = row_decision(row, "Pz_frame_abs", p_thr, settings=settings) \
            or undecided_decision(row, "per-frame |Pz|")
        binder = row_decision(row, "Pz_binder", thr["min_binder"], settings=settings) \
            or undecided_decision(row, "Binder cumulant of Pz")
        decisions += [pol, binder]
        if pol.side is Side.ABOVE and binder.side is Side.ABOVE:
            phase = Phase.TETRAGONAL
        elif pol.side is Side.BELOW or binder.side is Side.BELOW:
            phase = Phase.CUBIC
        else:
            phase = Phase.UNDECIDED
        decisive = pol
        desc = f"{pol.describe('per-frame |Pz|', 'C/m^2', 3)}; {binder.describe('Binder U of Pz', digits=2)}"
    if phase.decided and melt_out is Outcome.INCONCLUSIVE:
        phase = Phase.UNDECIDED
    text = f"{t:.0f} K: {phase.value.upper() if phase is Phase.UNDECIDED else phase.value} ({desc})" + (
        f"; {melt_text}" if melt_out is Outcome.INCONCLUSIVE else "")
    return PhaseDecision(phase, tuple(decisions), text, melt_out, decisive, t)


@dataclass(frozen=True)
class TcBracket:
    """Tc bracketed by decided phases: ``low`` (K, the highest polar temperature), ``high`` (K,
    the first cubic one above it), ``tc`` their midpoint, ``resolution`` the half-width (K) and
    ``status`` (``bracketed``, ``never_polar``, ``never_cubic``, ``undecided``, ``unbounded``)."""

    low: float | None
    high: float | None
    tc: float | None
    resolution: float | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def tc_bracket(temperatures: Sequence[float], phases: Sequence[Phase | str | None]) -> TcBracket:
    """Tc bracketed from per-temperature phases decided with intervals (None or ``undecided``:
    undecided), in any order of the temperatures; a repeated temperature is a ValueError.

    ``low``: the highest temperature decided polar; ``high``: the first temperature above it
    decided cubic (undecided temperatures in between widen the bracket).  Status ``bracketed``,
    ``never_polar``, ``never_cubic`` (polar at the top, or only molten / unstable above),
    ``undecided`` (no polar decision while some temperature is undecided) or ``unbounded``
    (polar, then no cubic decision above)."""
    temps = [float(t) for t in temperatures]
    if len(set(temps)) != len(temps):
        raise ValueError(f"tc_bracket: repeated temperature in {temps}")
    pairs = sorted(zip(temps, [Phase.of(p) for p in phases], strict=True))
    temps = [t for t, _ in pairs]
    ph = [p for _, p in pairs]
    idx_pol = [i for i, p in enumerate(ph) if p.polar]
    if not idx_pol:
        status = "undecided" if any(p is Phase.UNDECIDED for p in ph) else "never_polar"
        return TcBracket(None, None, None, None, status)
    i = idx_pol[-1]
    j = next((k for k in range(i + 1, len(ph)) if ph[k] is Phase.CUBIC), None)
    if j is None:
        rest = ph[i + 1:]
        status = ("never_cubic" if all(p.polar or p in (Phase.MOLTEN, Phase.UNSTABLE) for p in rest)
                  else "unbounded")
        return TcBracket(temps[i], None, None, None, status)
    lo, hi = temps[i], temps[j]
    return TcBracket(lo, hi, 0.5 * (lo + hi), 0.5 * (hi - lo), "bracketed")


def sweep_phases(rows: Sequence[dict[str, Any]], ensemble: str, settings: StatisticsSettings | None = None
                 ) -> list[PhaseDecision]:
    """:func:`decide_phase` of every row (in the rows' order)."""
    return [decide_phase(r, ensemble, settings) for r in rows]


METHOD = ("midpoint between the highest temperature decided polar and the first one above it decided "
          "cubic, each phase decided from confidence intervals (pto_checks.phase)")


def sweep_tc(rows: Sequence[dict[str, Any]], ensemble: str, settings: StatisticsSettings | None = None
             ) -> dict[str, Any]:
    """Tc of a sweep as ``Sweep.tc`` stores it: ``tc`` and ``resolution`` (K, None unless
    bracketed), ``bracket_K`` ([low, high]), ``status``, ``level`` (the confidence level of each
    phase decision) and ``method``."""
    settings = settings or statistics_settings()
    phases = [Phase.of(r["phase"]) if "phase" in r else decide_phase(r, ensemble, settings).phase
              for r in rows]
    br = tc_bracket([r["T_K"] for r in rows], phases)
    return {"tc": br.tc, "resolution": br.resolution, "bracket_K": [br.low, br.high], "status": br.status,
            "level": settings.confidence_level, "method": METHOD}


def classify_rows(rows: Sequence[dict[str, Any]], ensemble: str, settings: StatisticsSettings | None = None
                  ) -> list[dict[str, Any]]:
    """Copies of ``rows`` with ``phase`` (the decided :class:`Phase` value, ``undecided`` too) and
    ``phase_text`` (the comparisons that decided it)."""
    out = []
    for r in rows:
        d = decide_phase(r, ensemble, settings)
        out.append(dict(r, phase=d.phase.value, phase_text=d.text))
    return out
