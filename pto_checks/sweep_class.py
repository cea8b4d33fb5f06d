"""The outcome class of a whole heating sweep, as the PTO-test study classified its models.

The study (arXiv:2503.08207) judged each model's NPT heating run as a whole: a *transition* (polar
at low temperature, cubic above a Tc, no melting before it; successful whatever the low-temperature
c/a), *persistent supertetragonal* (c/a far above experiment until the top or until the crystal
collapses), *molten or unstable* before turning cubic, *re-entrant* (cubic, then polar again at a
higher temperature) or *never cubic*.  :func:`classify` decides that class from the per-temperature
phases of the one phase rule (:mod:`pto_checks.phase`: each phase decided from confidence
intervals, ``undecided`` where they do not decide), so every check derived from the class reads the
same decisions.  Temperatures in K.

The NVT sweep at the imposed experimental cell is judged by where the polarization is lost:
:func:`nvt_phases` decides each temperature by the one phase rule (per-frame |Pz| and the scale-free
Binder cumulant of Pz), and :func:`tc_band_outcome` decides a Tc bracket against a band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pto_checks.decisions import Outcome, StatisticsSettings
from pto_checks.phase import (
    Phase,
    PhaseDecision,
    TcBracket,
    decide_phase,
    tc_bracket,
)

__all__ = ["NptClass", "SweepClass", "classify", "classify_sweep", "nvt_phases", "tc_band_outcome"]


class NptClass(str, Enum):
    """Outcome class of an NPT heating sweep."""

    TRANSITION = "transition"
    PERSISTENT_SUPERTETRAGONAL = "persistent supertetragonal"
    MOLTEN_OR_UNSTABLE = "molten or unstable"
    REENTRANT = "re-entrant"
    NEVER_CUBIC = "never cubic"
    NEVER_POLAR = "never polar"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class SweepClass:
    """The class of one sweep: ``cls``; ``tc`` (the bracket of the first polar-to-cubic step, any
    class); ``first_cubic_K``; ``melt_K`` (the first molten or unstable temperature, or None);
    ``reentrant_K`` (the first polar temperature above a cubic one); ``supertetragonal_K`` (the
    temperatures decided supertetragonal); ``undecided_K``; ``text`` (one line saying why)."""

    cls: NptClass
    tc: TcBracket
    text: str
    first_cubic_K: float | None = None
    melt_K: float | None = None
    reentrant_K: float | None = None
    supertetragonal_K: tuple[float, ...] = ()
    undecided_K: tuple[float, ...] = ()
    top_K: float | None = None
    undecided_above_tc_K: tuple[float, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.cls.value, "text": self.text, "tc_bracket": self.tc.to_dict(),
                "first_cubic_K": self.first_cubic_K, "melt_K": self.melt_K, "reentrant_K": self.reentrant_K,
                "supertetragonal_K": list(self.supertetragonal_K), "undecided_K": list(self.undecided_K),
                "undecided_above_tc_K": list(self.undecided_above_tc_K), "top_K": self.top_K}


def classify(temperatures: Sequence[float], phases: Sequence[Phase | str | None]) -> SweepClass:
    """The class of a sweep from its per-temperature phases (any order; :class:`Phase`, its value,
    or None for undecided; molten and unstable are phases of the rule).

    * *molten or unstable*: a temperature molten or unstable before any cubic one, the last decided
      phase before it not supertetragonal ("molten before cubic");
    * *persistent supertetragonal*: no cubic temperature, and the last decided phase before the top
      (or before melting) is supertetragonal;
    * *re-entrant*: a polar temperature above a cubic one (before any melting);
    * *transition*: polar, then cubic, and every decided temperature above the first cubic one
      (until melting) cubic; undecided ones above it are listed (``undecided_above_tc_K``);
    * *never cubic*: polar at the top (tetragonal), no cubic temperature;
    * *never polar*: cubic at every decided temperature, none polar;
    * *undecided*: anything the decided phases do not settle (e.g. the top undecided, no cubic).
    """
    pairs = sorted(zip([float(t) for t in temperatures], [Phase.of(p) for p in phases], strict=True))
    temps = [t for t, _ in pairs]
    ph = [p for _, p in pairs]
    if not temps:
        return SweepClass(NptClass.UNDECIDED, TcBracket(None, None, None, None, "undecided"), "no temperatures")
    melt_i = next((i for i, p in enumerate(ph) if p in (Phase.MOLTEN, Phase.UNSTABLE)), None)
    end = len(ph) if melt_i is None else melt_i
    pre_t, pre = temps[:end], ph[:end]
    melt_K = temps[melt_i] if melt_i is not None else None
    supert = tuple(t for t, p in zip(temps, ph, strict=True) if p is Phase.SUPERTETRAGONAL)
    undec = tuple(t for t, p in zip(temps, ph, strict=True) if p is Phase.UNDECIDED)
    first_cubic = next((i for i, p in enumerate(pre) if p is Phase.CUBIC), None)
    br = tc_bracket(pre_t[:first_cubic + 1], pre[:first_cubic + 1]) if first_cubic is not None else \
        TcBracket(None, None, None, None, "never_cubic")
    common = dict(melt_K=melt_K, supertetragonal_K=supert, undecided_K=undec, top_K=temps[-1])
    melt_txt = (f"; {ph[melt_i].value.upper()} at {melt_K:.0f} K" if melt_i is not None else "")
    decided_pre = [(t, p) for t, p in zip(pre_t, pre, strict=True) if p.decided]

    if first_cubic is not None:
        tc_K = pre_t[first_cubic]
        above = list(zip(pre_t[first_cubic + 1:], pre[first_cubic + 1:], strict=True))
        back = next(((t, p) for t, p in above if p.polar), None)
        if back is not None:
            return SweepClass(NptClass.REENTRANT, br, f"re-entrant: cubic at {tc_K:.0f} K, {back[1].value} again at "
                              f"{back[0]:.0f} K{melt_txt}", tc_K, reentrant_K=back[0], **common)
        if not any(p.polar for p in pre[:first_cubic]):
            if br.status == "undecided":
                return SweepClass(NptClass.UNDECIDED, br, f"no temperature below the first cubic one ({tc_K:.0f} K) "
                                  f"is decided polar{melt_txt}", tc_K, **common)
            return SweepClass(NptClass.NEVER_POLAR, br, f"cubic from the lowest temperature ({tc_K:.0f} K) on"
                              f"{melt_txt}", tc_K, **common)
        und_above = tuple(t for t, p in above if p is Phase.UNDECIDED)
        low = "supertetragonal" if any(p is Phase.SUPERTETRAGONAL for p in pre[:first_cubic]) else "tetragonal"
        return SweepClass(NptClass.TRANSITION, br, f"transition: {low} below, cubic from {tc_K:.0f} K (Tc in "
                          f"[{br.low:.0f}, {br.high:.0f}] K)" + (f"; undecided above it at "
                          f"{', '.join(f'{t:.0f}' for t in und_above)} K" if und_above else "") + melt_txt,
                          tc_K, undecided_above_tc_K=und_above, **common)
    # no cubic temperature before melting or the top
    last = decided_pre[-1] if decided_pre else None
    if melt_i is not None:
        if last is not None and last[1] is Phase.SUPERTETRAGONAL:
            return SweepClass(NptClass.PERSISTENT_SUPERTETRAGONAL, br, f"persistent supertetragonal: "
                              f"supertetragonal up to {last[0]:.0f} K, never cubic, molten before cubic{melt_txt}",
                              **common)
        if melt_i == 0 or last is not None:
            return SweepClass(NptClass.MOLTEN_OR_UNSTABLE, br, "molten before cubic: "
                              + (f"{last[1].value} up to {last[0]:.0f} K" if last else "no crystal at all")
                              + melt_txt, **common)
        return SweepClass(NptClass.UNDECIDED, br, f"no phase decided before melting{melt_txt}", **common)
    if ph[-1] is Phase.SUPERTETRAGONAL:
        return SweepClass(NptClass.PERSISTENT_SUPERTETRAGONAL, br, f"persistent supertetragonal: still "
                          f"supertetragonal at the top of the sweep ({temps[-1]:.0f} K)", **common)
    if ph[-1] is Phase.TETRAGONAL:
        return SweepClass(NptClass.NEVER_CUBIC, br, f"never cubic: still tetragonal at the top of the sweep "
                          f"({temps[-1]:.0f} K)", **common)
    return SweepClass(NptClass.UNDECIDED, br, f"undecided: no cubic temperature and the top ({temps[-1]:.0f} K) "
                      "is undecided", **common)


def classify_sweep(per_row: Sequence[PhaseDecision]) -> SweepClass:
    """:func:`classify` of the phases the phase rule decided for a sweep's rows."""
    return classify([p.temperature_K for p in per_row], [p.phase for p in per_row])


def tc_band_outcome(br: TcBracket, low_K: float, high_K: float) -> Outcome:
    """A Tc bracket against a band [``low_K``, ``high_K``]: PASS when the bracket lies inside it,
    FAIL when it lies wholly outside (or an unbounded bracket starts above it), else INCONCLUSIVE."""
    if br.status == "bracketed":
        if low_K <= br.low and br.high <= high_K:
            return Outcome.PASS
        if br.high < low_K or br.low > high_K:
            return Outcome.FAIL
        return Outcome.INCONCLUSIVE
    if br.status == "unbounded" and br.low is not None and br.low > high_K:
        return Outcome.FAIL
    return Outcome.INCONCLUSIVE


def nvt_reference_polarization(rows: Sequence[dict[str, Any]]) -> tuple[float | None, float | None]:
    """The model's own polarization scale for the NVT sweep: the mean per-frame |Pz| (C/m^2) of its
    lowest temperature (series ``Pz_frame_abs``, else the row's ``Pz``), and that temperature."""
    if not rows:
        return None, None
    low = min(rows, key=lambda r: r["T_K"])
    st = (low.get("stats") or {}).get("series", {}).get("Pz_frame_abs")
    p0 = st["mean"] if isinstance(st, dict) else abs(low.get("Pz", math.nan))
    return (float(p0) if p0 is not None and math.isfinite(p0) else None), float(low["T_K"])


def nvt_phases(rows: Sequence[dict[str, Any]], fraction: float, settings: StatisticsSettings | None = None
               ) -> tuple[list[PhaseDecision], float | None]:
    """Per-temperature NVT phases, decided by the one phase rule (:func:`pto_checks.phase.decide_phase`:
    per-frame |Pz| and the Binder cumulant of Pz, which is scale-free, so the polar/lost distinction
    does not hang on the charge convention), so that the verdict, the rows, the report and Tc tell
    one story.  Also returns ``fraction`` x the model's own low-temperature per-frame |Pz| (C/m^2;
    None without a reference), reported beside the verdict as the scale of the loss."""
    p0, _ = nvt_reference_polarization(rows)
    thr = None if p0 is None or p0 <= 0 else fraction * p0
    out = [decide_phase(r, "nvt", settings) for r in rows]
    return out, thr
