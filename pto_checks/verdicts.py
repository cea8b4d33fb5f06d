"""Verdicts: a measured value, a reference and a tolerance -> pass, fail or inconclusive, with a message.

A failing verdict's message states the measured value, the reference (and its source), the
tolerance and the functional the model was trained on.  Dynamic verdicts decide from confidence
intervals (:mod:`pto_checks.statistics`, decision rule in :mod:`pto_checks.decisions`) and read
every phase and the Tc bracket from :mod:`pto_checks.phase`: a quantity whose interval contains
its threshold, or a run too short or not equilibrated, makes the check inconclusive, and the
message says what would decide it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pto_checks.decisions import (
    Interval,
    Outcome,
    Side,
    StatisticsSettings,
    ThresholdDecision,
    combine,
    statistics_settings,
)
from pto_checks.phase import (  # noqa: F401  (row_decision, polar_order_decision re-exported)
    Phase,
    PhaseDecision,
    crystal_decision,
    decide_phase,
    polar_order_decision,
    row_decision,
    sweep_phases,
    undecided_decision,
)
from pto_checks.phase import tc_bracket as _tc_bracket
from pto_checks.reference import functional_reference, load_reference, tolerance
from pto_checks.sweep_class import NptClass, SweepClass, classify_sweep, nvt_phases, tc_band_outcome

__all__ = ["Interval", "Outcome", "Verdict"]


@dataclass
class Verdict:
    """Outcome of one physical check for one model.

    ``outcome``: pass, fail or inconclusive; ``passed`` is ``outcome is Outcome.PASS`` (kept for
    callers that only know pass/fail: an inconclusive verdict has ``passed`` False).  Give either;
    when ``outcome`` is given it wins.  ``interval``: the confidence interval of the decisive
    quantity (or None).
    """

    check: str
    passed: bool
    message: str
    measured: Any = None
    reference: Any = None
    tolerance: Any = None
    unit: str = ""
    source: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome | None = None
    interval: Interval | None = None

    def __post_init__(self) -> None:
        if self.outcome is None:
            self.outcome = Outcome.PASS if self.passed else Outcome.FAIL
        self.outcome = Outcome(self.outcome)
        self.passed = self.outcome is Outcome.PASS

    def set_outcome(self, outcome: Outcome) -> None:
        """Change the outcome (``passed`` follows)."""
        self.outcome = Outcome(outcome)
        self.passed = self.outcome is Outcome.PASS

    @property
    def inconclusive(self) -> bool:
        return self.outcome is Outcome.INCONCLUSIVE

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcome"] = self.outcome.value
        d["status"] = self.outcome.value
        d["interval"] = self.interval.to_dict() if self.interval else None
        return d


def _trained_on(functional: str) -> str:
    return f"model trained on {functional} data"


def within(
    check: str,
    measured: float,
    reference: float,
    tol: float,
    unit: str,
    source: str,
    functional: str,
    what: str,
) -> Verdict:
    """|measured - reference| <= tol."""
    ok = abs(measured - reference) <= tol
    rel = "within" if ok else "outside"
    msg = (
        f"{what} = {measured:.4f} {unit} vs reference {reference:.4f} {unit} ({source}): "
        f"|diff| = {abs(measured - reference):.4f} is {rel} tolerance {tol} {unit}; "
        f"{_trained_on(functional)}"
    )
    return Verdict(check, ok, msg, measured, reference, tol, unit, source)


def against_reference(check: str, quantity: str, measured: float, against: str, functional: str,
                      what: str, unit: str, tolerance_key: str) -> Verdict:
    """Compare ``measured`` with ``references.<against>.<quantity>`` and ``tolerances.<key>``."""
    ref = functional_reference(against, quantity)
    if ref is None:
        raise KeyError(f"no reference {quantity!r} for {against!r} in reference_data/pto.toml")
    tol = tolerance(tolerance_key)["value"]
    return within(check, measured, ref["value"], tol, unit, ref["source"], functional, what)


def polar_ground_state(delta_e: float, c_over_a: float, functional: str) -> Verdict:
    """The relaxed tetragonal cell is polar: dE >= min and c/a - 1 >= min (reference_data)."""
    tol = tolerance("polar_ground_state")
    ok = delta_e >= tol["min_delta_e"] and (c_over_a - 1) >= tol["min_tetragonality"]
    msg = (
        f"E(cubic) - E(tetragonal) = {delta_e:.4f} eV/f.u. (need >= {tol['min_delta_e']}), "
        f"c/a - 1 = {c_over_a - 1:.4f} (need >= {tol['min_tetragonality']}): "
        + ("the ground state is polar tetragonal" if ok else
           "the tetragonal relaxation collapsed to (or below) the cubic phase")
        + f"; {_trained_on(functional)}"
    )
    return Verdict("polar_ground_state", ok, msg, {"delta_e": delta_e, "c_over_a": c_over_a},
                   None, tol, "eV/f.u., 1", load_reference()["study"]["citation"])


def no_imaginary_modes(phonon: dict[str, Any], functional: str) -> Verdict:
    """No phonon below the threshold on the path, the mesh and the supercell's commensurate q
    (every branch judged; tolerance only for the acoustic modes at Gamma), decided by
    :func:`pto_checks.phonons.decide_stability` with supercell escalation.

    ``phonon``: the data of :func:`pto_checks.stages.phonon_stage`.
    """
    tol = tolerance("phonon")
    d = phonon["decision"]
    outcome = Outcome(d.get("outcome", "pass" if d["stable"] else "fail"))
    ok = outcome is Outcome.PASS
    m = d["mode"]
    name = "x".join(str(x) for x in d["decided_by"])

    def fmt(q: list[float]) -> str:
        return "(" + ", ".join(f"{x:.3f}" for x in q) + ")"

    def where(mode: dict[str, Any]) -> str:
        sc = "x".join(str(x) for x in mode["supercell"])
        return ("exact: q commensurate with " if mode["exact"] else "interpolated: q not commensurate with ") + sc

    history = "; ".join(
        f"{'x'.join(map(str, st['supercell']))}: lowest {st['lowest']['f_thz']:.3f} THz at {fmt(st['lowest']['q'])}, "
        f"{st['n_below']} below threshold"
        + (f" (worst {st['worst']['f_thz']:.3f} THz at {fmt(st['worst']['q'])}, {where(st['worst'])})"
           if st["worst"] else "")
        for st in d["steps"])
    probes = d.get("exact_probes") or []
    head = (f"decided by the {name} supercell"
            + (f" and {len(probes)} exact frequencies at its dips' own q" if probes and ok else "") + ": "
            + (f"no imaginary modes at any exact q (the {name} dips, lowest "
               f"{d['steps'][-1]['lowest']['f_thz']:.3f} THz, are interpolation artefacts); lowest exact frequency "
               f"at a dip {m['f_thz']:.3f} THz at q = {fmt(m['q'])} ({where(m)})"
               if probes and ok else
               f"no imaginary modes; lowest frequency {m['f_thz']:.3f} THz at q = {fmt(m['q'])} ({where(m)})"
               + (f", lowest away from Gamma {off['f_thz']:.3f} THz at q = {fmt(off['q'])} ({where(off)})"
                  if (off := d["steps"][-1].get("lowest_off_gamma")) else "")
               if ok else f"IMAGINARY MODE {m['f_thz']:.3f} THz at q = {fmt(m['q'])}, branch {m['branch']} "
               f"({where(m)}): the relaxed P4mm cell is dynamically unstable"
               if outcome is Outcome.FAIL else
               f"INCONCLUSIVE: unconfirmed dip {m['f_thz']:.3f} THz at q = {fmt(m['q'])}, branch {m['branch']} "
               f"({where(m)}); not a pass"))
    msg = (f"{head}. {d['reason']}. Rule: every branch at every q >= {tol['imaginary_threshold_thz']} THz, "
           f"acoustic modes at Gamma >= {tol['acoustic_gamma_thz']} THz; an interpolated dip in the largest "
           f"supercell is recomputed exactly at its own q (a diagonal supercell commensurate with it) where "
           f"that is affordable, which decides; else it fails only if every supercell shows it within "
           f"{tol['dip_match_grid_spacings']} grid spacing(s) of the largest, and is otherwise inconclusive; "
           f"supercells: {history}; "
           f"symprec {phonon.get('symprec')} A; {_trained_on(functional)}")
    v = Verdict("no_imaginary_modes", ok, msg, {"f_thz": m["f_thz"], "q": list(m["q"]), "exact": m["exact"],
                                                "supercell": list(d["decided_by"])},
                tol["imaginary_threshold_thz"], {"acoustic_gamma_thz": tol["acoustic_gamma_thz"],
                                                 "elsewhere_thz": tol["imaginary_threshold_thz"]},
                "THz", tol["source"], outcome=outcome)
    v.details = {"decision": d}
    lw = d.get("long_wavelength")
    if lw:
        # Born's criteria (a positive-definite stiffness) answer another question than the acoustic
        # branches' sign: reported beside the verdict, never deciding it
        v.details["born_criteria"] = {"hold": bool(lw.get("born_stable", not lw.get("violations"))),
                                      "violations": list(lw.get("violations", []))}
        v.message += ("\nBorn criteria (stability of the cell against a homogeneous strain; an observation, not "
                      "this check's rule): " + ("hold" if v.details["born_criteria"]["hold"] else
                                               "VIOLATED: " + "; ".join(v.details["born_criteria"]["violations"])))
    return v


def keeps_p4mm(symmetry: dict[str, Any], functional: str) -> Verdict:
    """The unconstrained relaxation from a perturbed P4mm cell gains no more than
    ``tolerances.keeps_p4mm.max_energy_gain`` (eV/f.u.) over the P4mm-held one.

    ``symmetry``: :class:`pto_checks.relax.SymmetryObservation` as a dict.
    """
    tol = tolerance("keeps_p4mm")
    thr = tol["max_energy_gain"]
    gain = symmetry.get("energy_gain_per_fu")
    sp = symmetry.get("symprec")
    if gain is None:
        ok = False
        what = (f"the unconstrained relaxation did not finish ({symmetry.get('error')}): the model runs away "
                f"from P4mm ({symmetry.get('held_spacegroup')} held)")
    else:
        ok = gain <= thr
        what = (f"unconstrained relaxation from a perturbed P4mm cell ends in {symmetry['free_spacegroup']} at "
                f"symprec {sp} A ({symmetry['free_spacegroup_tight']} at 1e-5 A, "
                f"{symmetry.get('free_spacegroup_loose')} at 1e-2 A), "
                f"E(P4mm held) - E(unconstrained) = {gain * 1000:.3f} meV/f.u. (limit {thr * 1000:.1f}): "
                + ("the model keeps P4mm" if ok else "the model's ground state is NOT P4mm: it gains energy by "
                   "breaking the symmetry, so the P4mm checks describe a saddle point, not its ground state")
                + ("" if symmetry.get("free_converged") else " (the unconstrained relaxation hit its step cap)"))
    return Verdict("keeps_p4mm", ok, f"{what}; {_trained_on(functional)}", gain, 0.0, thr, "eV/f.u.",
                   tol["reasoning"])


def check_bound(check: str, ok: bool, message: str, measured: Any = None, tol: Any = None,
                unit: str = "") -> Verdict:
    """Verdict of a check whose logic lives in the caller (sanity checks)."""
    return Verdict(check, bool(ok), message, measured, None, tol, unit)


def reference_energies(measured: dict[str, float], scale: str, functional: str) -> Verdict:
    """Energies per atom (eV/atom) of the sanity crystals vs the scale the model was trained on.

    ``scale``: ``mp-raw`` or ``mp2020`` (``reference_data/sanity.toml``).
    """
    ref = load_reference("sanity")
    tol = ref["tolerance"]["value"]
    oxide = ref["scales"]["mp2020"]["oxide_correction_per_O"] if scale == "mp2020" else 0.0
    rows, bad = [], []
    expected = {}
    for name, e in measured.items():
        entry = ref["crystals"][name]
        n_o, n_at = _oxygen_fraction(name)
        exp_e = entry["mp_raw"] + oxide * n_o / n_at
        expected[name] = exp_e
        diff = e - exp_e
        rows.append(f"{name} ({entry['material_id']}): {e:.3f} vs {exp_e:.3f} eV/atom ({diff:+.3f})")
        if abs(diff) > tol:
            bad.append(name)
    msg = (("energies match" if not bad else f"BROKEN ENERGIES for {', '.join(bad)}")
           + f" on the {scale} scale within {tol} eV/atom: " + "; ".join(rows)
           + f"; {_trained_on(functional)}")
    return Verdict("reference_energies", not bad, msg, measured, expected, tol, "eV/atom",
                   ref["scales"][scale]["source"])


def bulk_moduli(measured_GPa: dict[str, float], functional: str) -> Verdict:
    """Bulk moduli (GPa) of the sanity crystals vs experiment: the relative-energy form of the energy
    sanity check, for models with no public absolute energy scale (``reference_data/sanity.toml``
    ``[bulk_modulus]``)."""
    ref = load_reference("sanity")["bulk_modulus"]
    factor = ref["tolerance_factor"]
    rows, bad, expected = [], [], {}
    for name, b in measured_GPa.items():
        want = ref["crystals"][name]["value"]
        expected[name] = want
        ratio = b / want
        rows.append(f"{name}: {b:.0f} vs {want:.0f} GPa (x{ratio:.2f})")
        if not (1.0 / factor <= ratio <= factor):
            bad.append(name)
    msg = (("bulk moduli match" if not bad else f"BROKEN ENERGY-VOLUME CURVES for {', '.join(bad)}")
           + f" within a factor {factor} of experiment: " + "; ".join(rows) + f"; {_trained_on(functional)}")
    return Verdict("bulk_moduli", not bad, msg, measured_GPa, expected, factor, "GPa", ref["source"])


def _oxygen_fraction(formula: str) -> tuple[int, int]:
    from ase.formula import Formula

    counts = Formula(formula).count()
    return counts.get("O", 0), sum(counts.values())


# ---------------------------------------------------------------------------------------------
# Finite-temperature verdicts.  ``sweep``: a :class:`pto_checks.md.sweep.Sweep` (or a dict with
# ``rows``, ``ensemble``, ``integrator``, ``protocol``, ``table``).  Every phase is the one
# :mod:`pto_checks.phase` decides; rows without statistics are undecided (inconclusive), never
# judged on their means.


def needs_summary(verdict: Verdict) -> str:
    """What would decide an inconclusive verdict, in one line: the undecided comparisons with the
    extra simulation they need (e.g. '1000 K: the 95% interval contains the threshold: needs
    about 40 more ps at 1000 K'), else the verdict's first line."""
    out = []
    for d in verdict.details.get("decisions") or []:
        if d.get("side") != Side.UNDECIDED.value:
            continue
        text = ThresholdDecision.from_dict(d).needs()
        if text not in out:
            out.append(text)
    if not out:
        head = verdict.message.splitlines()[0] if verdict.message else ""
        return head.removeprefix("INCONCLUSIVE: ")[:400]
    return "; ".join(out)[:600]


def _sweep_context(sweep: dict[str, Any]) -> str:
    p = sweep["protocol"]
    reduced = (f"REDUCED protocol '{p.name}' ({p.md.supercell}^3 cells, {p.md.steps} steps of "
               f"{p.md.timestep_fs} fs per temperature): decided only where this run's confidence "
               "intervals allow. ") if p.reduced else ""
    return (f"{reduced}{sweep['ensemble'].upper()} ({sweep['integrator']}) sweep:\n{sweep['table']}")


def _sweep_verdict(check: str, ok: bool | Outcome, what: str, sweep: dict[str, Any], functional: str,
                   measured: Any = None, tol: Any = None, interval: Interval | None = None,
                   decisions: list[ThresholdDecision] | None = None) -> Verdict:
    outcome = ok if isinstance(ok, Outcome) else (Outcome.PASS if ok else Outcome.FAIL)
    head = "INCONCLUSIVE: " if outcome is Outcome.INCONCLUSIVE else ""
    msg = f"{head}{what}; {_trained_on(functional)}\n{_sweep_context(sweep)}"
    v = Verdict(check, outcome is Outcome.PASS, msg, measured, None, tol, outcome=outcome, interval=interval)
    v.details = {"protocol": sweep["protocol"].name, "reduced": sweep["protocol"].reduced,
                 "ensemble": sweep["ensemble"], "integrator": sweep["integrator"]}
    if decisions is not None:
        v.details["decisions"] = [d.to_dict() for d in decisions]
        v.details["confidence_level"] = statistics_settings().confidence_level
    return v


def phase_decision(row: dict[str, Any], ensemble: str, settings: StatisticsSettings | None = None
                   ) -> tuple[str | None, list[ThresholdDecision], str]:
    """(phase value or None when undecided, decisions, text) of :func:`pto_checks.phase.decide_phase`."""
    d = decide_phase(row, ensemble, settings)
    return (d.phase.value if d.phase.decided else None), list(d.decisions), d.text


def _phases(sweep: dict[str, Any]) -> list[PhaseDecision]:
    return sweep_phases(sweep["rows"], sweep["ensemble"])


def _all(per_row: list[PhaseDecision]) -> list[ThresholdDecision]:
    return [d for p in per_row for d in p.decisions]


def no_melting_or_instability(sweep: dict[str, Any], functional: str) -> Verdict:
    """No temperature of the sweep is molten or unstable (blow-up)."""
    per_row = [crystal_decision(r) for r in sweep["rows"]]
    outcome = combine(o for o, _, _ in per_row)
    bad = [text for o, _, text in per_row if o is not Outcome.PASS]
    what = "crystal at every temperature" if not bad else "; ".join(bad)
    decisions = [d for _, ds, _ in per_row for d in ds]
    return _sweep_verdict("no_melting_or_instability", outcome, what, sweep, functional,
                          [r.get("phase") for r in sweep["rows"]], tolerance("melting"), decisions=decisions)


def polar_at_low_temperature(sweep: dict[str, Any], functional: str) -> Verdict:
    """The lowest temperature of the sweep (300 K) is polar: tetragonal, or supertetragonal (a
    supertetragonal state is polar; its excess c/a is the static checks' business)."""
    d = decide_phase(sweep["rows"][0], sweep["ensemble"])
    outcome = (Outcome.INCONCLUSIVE if not d.phase.decided else
               Outcome.PASS if d.phase.polar else Outcome.FAIL)
    return _sweep_verdict("polar_at_300K", outcome, f"{d.text}; expected polar (tetragonal or supertetragonal)",
                          sweep, functional, d.phase.value, tolerance("phase"),
                          d.decisive.interval if d.decisive else None, list(d.decisions))


def sweep_class(sweep: dict[str, Any]) -> SweepClass:
    """The outcome class of an NPT sweep (:func:`pto_checks.sweep_class.classify`) from the phases
    of the one phase rule."""
    return classify_sweep(_phases(sweep))


def _class_verdict(check: str, outcome: Outcome, what: str, sweep: dict[str, Any], functional: str,
                   cls: SweepClass, per_row: list[PhaseDecision], measured: Any = None, tol: Any = None,
                   interval: Interval | None = None) -> Verdict:
    undecided = [p.text for p in per_row if not p.phase.decided]
    if outcome is Outcome.INCONCLUSIVE and undecided and "; undecided: " not in what:
        what += "; undecided: " + "; ".join(undecided)
    v = _sweep_verdict(check, outcome, f"{what} [outcome class: {cls.text}]", sweep, functional, measured, tol,
                       interval, _all(per_row))
    v.details["npt_class"] = cls.to_dict()
    return v


def cubic_above_tc(sweep: dict[str, Any], functional: str) -> Verdict:
    """The sweep turns cubic and stays cubic: PASS for a *transition* whatever the low-temperature c/a
    (supertetragonal included) and for a sweep cubic throughout; FAIL for a re-entrant sweep (cubic,
    then polar again), one never cubic, persistently supertetragonal or molten before cubic;
    INCONCLUSIVE when the class is undecided or a temperature above the first cubic one is."""
    per_row = _phases(sweep)
    cls = classify_sweep(per_row)
    c = cls.cls
    if c in (NptClass.TRANSITION, NptClass.NEVER_POLAR):
        outcome = Outcome.INCONCLUSIVE if cls.undecided_above_tc_K else Outcome.PASS
        what = (f"cubic from {cls.first_cubic_K:.0f} K up to the top" if outcome is Outcome.PASS else
                f"cubic at {cls.first_cubic_K:.0f} K, undecided above it at "
                + ", ".join(f"{t:.0f}" for t in cls.undecided_above_tc_K) + " K (a re-entrant sweep is not excluded)")
    elif c is NptClass.UNDECIDED:
        outcome, what = Outcome.INCONCLUSIVE, "the sweep's phases do not decide whether it turns cubic"
    else:
        outcome = Outcome.FAIL
        what = {NptClass.REENTRANT: f"RE-ENTRANT: cubic at {cls.first_cubic_K or 0:.0f} K, polar again at "
                                    f"{cls.reentrant_K or 0:.0f} K",
                NptClass.NEVER_CUBIC: "the paraelectric phase is never reached",
                NptClass.PERSISTENT_SUPERTETRAGONAL: "the paraelectric phase is never reached: supertetragonal "
                                                     "to the top of the sweep or to melting",
                NptClass.MOLTEN_OR_UNSTABLE: f"MOLTEN BEFORE CUBIC: molten or unstable at {cls.melt_K or 0:.0f} K "
                                             "before any temperature is cubic"}[c]
    top = per_row[-1]
    return _class_verdict("cubic_above_tc", outcome, what, sweep, functional, cls, per_row,
                          [p.phase.value for p in per_row], tolerance("phase"),
                          top.decisive.interval if top.decisive else None)


def no_supertetragonal(sweep: dict[str, Any], functional: str) -> Verdict:
    """No *persistent* supertetragonal phase: FAIL only when the sweep stays supertetragonal (c/a
    above ``supertetragonal_min``) to its top or to melting.  A supertetragonal low-temperature
    state that turns cubic passes here (its excess c/a is the static checks' business);
    INCONCLUSIVE when the class is undecided and some temperature is supertetragonal or undecided."""
    thr = tolerance("phase")["supertetragonal_min"]
    per_row = _phases(sweep)
    cls = classify_sweep(per_row)
    sup = ", ".join(f"{t:.0f}" for t in cls.supertetragonal_K)
    if cls.cls is NptClass.PERSISTENT_SUPERTETRAGONAL:
        outcome = Outcome.FAIL
        what = f"PERSISTENT SUPERTETRAGONAL (c/a >= {thr}) at {sup} K, never cubic"
    elif cls.cls is NptClass.UNDECIDED and (cls.supertetragonal_K or cls.undecided_K):
        outcome = Outcome.INCONCLUSIVE
        what = "undecided whether a supertetragonal state persists" + (f" (supertetragonal at {sup} K)" if sup else "")
    else:
        outcome = Outcome.PASS
        what = ("no supertetragonal phase" if not sup else
                f"supertetragonal at {sup} K but it does not persist ({cls.cls.value})") + f" (threshold c/a >= {thr})"
    return _class_verdict("no_supertetragonal", outcome, what, sweep, functional, cls, per_row,
                          [r.get("c_over_a") for r in sweep["rows"]], thr)


def tc_bracket(temperatures: list[float], phases: list[str | None]) -> dict[str, Any]:
    """:func:`pto_checks.phase.tc_bracket` as a dict (``low``, ``high``, ``tc``, ``resolution``, ``status``)."""
    return _tc_bracket(temperatures, phases).to_dict()


def tc_band() -> tuple[float, float]:
    """The NPT Tc pass band (K): experiment minus ``tolerances.tc.below``, plus ``above``."""
    exp = load_reference()["experiment"]["tc"]["value"]
    tol = tolerance("tc")
    return exp - tol["below"], exp + tol["above"]


def tc_vs_experiment(sweep: dict[str, Any], functional: str) -> Verdict:
    """Tc of the sweep's transition against the band of ``tolerances.tc`` ([500, 910] K): the bracket
    (the last polar and the first cubic temperature, :mod:`pto_checks.phase`) inside passes, wholly
    outside fails, else inconclusive.  Decided for a transition whatever its low-temperature c/a, and
    for the first transition of a re-entrant sweep; a sweep never cubic, persistently supertetragonal
    or molten before cubic fails and says which."""
    ref = load_reference()
    exp = ref["experiment"]["tc"]
    lo_ok, hi_ok = tc_band()
    level = statistics_settings().confidence_level
    per_row = _phases(sweep)
    cls = classify_sweep(per_row)
    br = cls.tc
    interval = None
    if cls.cls in (NptClass.TRANSITION, NptClass.REENTRANT) and br.status == "bracketed":
        interval = Interval(br.low, br.high, level, "K")
        outcome = tc_band_outcome(br, lo_ok, hi_ok)
        what = (f"Tc in [{br.low:.0f}, {br.high:.0f}] K (between the last polar and the first cubic temperature, "
                f"each decided at the {level:.0%} level) vs experiment {exp['value']} K ({exp['source']}): the "
                "bracket is " + {Outcome.PASS: "inside", Outcome.FAIL: "outside",
                                 Outcome.INCONCLUSIVE: "partly outside"}[outcome]
                + f" the band [{lo_ok:.0f}, {hi_ok:.0f}] K (tolerances.tc)")
        if outcome is Outcome.INCONCLUSIVE:
            what += f"; needs the bracket refined: temperatures between {br.low:.0f} and {br.high:.0f} K"
    elif cls.cls in (NptClass.NEVER_CUBIC, NptClass.PERSISTENT_SUPERTETRAGONAL, NptClass.MOLTEN_OR_UNSTABLE,
                     NptClass.NEVER_POLAR):
        outcome = Outcome.FAIL
        if cls.cls is NptClass.NEVER_CUBIC:
            what = f"no tetragonal-to-cubic transition: still polar at {cls.top_K:.0f} K"
        elif cls.cls is NptClass.PERSISTENT_SUPERTETRAGONAL:
            what = "no transition: supertetragonal " + (
                f"until it melts at {cls.melt_K:.0f} K (molten before cubic)" if cls.melt_K is not None
                else f"up to the top of the sweep ({cls.top_K:.0f} K)")
        elif cls.cls is NptClass.MOLTEN_OR_UNSTABLE:
            what = f"no transition: MOLTEN BEFORE CUBIC at {cls.melt_K:.0f} K"
        else:
            what = "no transition: never polar"
    else:
        outcome = Outcome.INCONCLUSIVE
        what = "Tc cannot be bracketed from decided temperatures"
    undecided = [p.text for p in per_row if not p.phase.decided]
    if undecided and outcome is not Outcome.PASS:
        what += "; undecided: " + "; ".join(undecided)
    v = _class_verdict("tc_vs_experiment", outcome, what, sweep, functional, cls, per_row, br.tc,
                       {"below": tolerance("tc")["below"], "above": tolerance("tc")["above"]}, interval)
    v.details["tc_bracket"] = br.to_dict()
    v.reference, v.unit, v.source = exp["value"], "K", exp["source"]
    return v


def nvt_band() -> tuple[float, float]:
    """The NVT pass band (K) of ``tolerances.nvt_tc``."""
    tol = tolerance("nvt_tc")
    return tol["reference"] - tol["below"], tol["reference"] + tol["above"]


def polarization_vanishes(sweep: dict[str, Any], functional: str) -> Verdict:
    """NVT at the imposed cell: the bracket where Pz is lost (per-frame |Pz| decided below
    ``tolerances.nvt_tc.polar_fraction`` x the model's own low-temperature per-frame |Pz|) lies in
    the band of ``tolerances.nvt_tc`` ([840, 1250] K): a loss far below the study's ~1100 K fails
    (lower bound) and so does a polarization kept past the band (upper bound).  Pz need not reach
    zero: the cell is held tetragonal."""
    tol = tolerance("nvt_tc")
    lo_ok, hi_ok = nvt_band()
    level = statistics_settings().confidence_level
    per_row, thr = nvt_phases(sweep["rows"], tol["polar_fraction"])
    temps = [p.temperature_K for p in per_row]
    phases = [p.phase for p in per_row]
    melt = next((p for p in per_row if p.phase in (Phase.MOLTEN, Phase.UNSTABLE)), None)
    br = _tc_bracket(temps, phases)
    interval = None
    scale = f"; {tol['polar_fraction']} x its {min(temps):.0f} K per-frame |Pz| = {thr:.3f} C/m^2" if thr else ""
    if br.status == "bracketed":
        interval = Interval(br.low, br.high, level, "K")
        outcome = tc_band_outcome(br, lo_ok, hi_ok)
        what = (f"Pz lost in [{br.low:.0f}, {br.high:.0f}] K (the phase rule: per-frame |Pz| and the Binder cumulant "
                f"of Pz, each temperature decided at the {level:.0%} level{scale}): "
                + {Outcome.PASS: "inside", Outcome.FAIL: "OUTSIDE", Outcome.INCONCLUSIVE: "partly outside"}[outcome]
                + f" the band [{lo_ok:.0f}, {hi_ok:.0f}] K (study: ~{tol['reference']} K)"
                + ("; LOST FAR BELOW the study's models" if outcome is Outcome.FAIL and br.high < lo_ok else ""))
    elif br.status == "never_cubic":
        outcome = Outcome.FAIL
        what = ("Pz never lost: polar by the phase rule up to "
                + (f"melting at {melt.temperature_K:.0f} K" if melt else f"{max(temps):.0f} K")
                + f", beyond the band [{lo_ok:.0f}, {hi_ok:.0f}] K")
        if not melt and max(temps) <= hi_ok:
            outcome = Outcome.INCONCLUSIVE
            top = 100 * math.ceil((hi_ok + 1) / 100)
            what = (f"Pz not lost up to {max(temps):.0f} K, where the sweep ends, inside the band [{lo_ok:.0f}, "
                    f"{hi_ok:.0f}] K: a run at {top:.0f} K that samples it decides (add it to md.temperatures_K)")
    elif br.status == "never_polar":
        outcome, what = Outcome.FAIL, "never polar at the imposed cell (the phase rule at every temperature)"
    else:
        outcome = tc_band_outcome(br, lo_ok, hi_ok)
        what = "the loss of Pz cannot be bracketed from decided temperatures"
    undecided = [p.text for p in per_row if not p.phase.decided]
    if outcome is Outcome.INCONCLUSIVE and undecided:
        what += "; undecided: " + "; ".join(undecided)
    what += "; Pz need not reach zero at the imposed c/a (the cell is held tetragonal)"
    v = _sweep_verdict("polarization_vanishes_above_tc", outcome, what, sweep, functional, br.tc,
                       {"band_K": [lo_ok, hi_ok], "polar_fraction": tol["polar_fraction"], "threshold_C_m2": thr},
                       interval, _all(per_row))
    v.details["nvt_bracket"] = br.to_dict()
    v.details["phases"] = [p.text for p in per_row]
    return v


#: key of a loaded baseline dict naming the file it was read from (set by the plugin; never written)
BASELINE_SOURCE = "_source"


def unchanged_vs_baseline(model: str, baseline: dict[str, Any], current: dict[str, tuple[float, float]]) -> Verdict:
    """Quantities ``{name: (value, std error)}`` vs the baseline results (CI gate).

    Moved = |diff| > max(threshold, 2 x combined error).  The check fails, naming the baseline file
    and the field, when the model is absent from the baseline (with the command that records it),
    when a quantity measured now is missing from the baseline or is not a finite number there (a
    NaN compares as "unchanged" with anything), when a quantity measured now is not finite, and
    when there is nothing to compare at all: a gate never passes on a comparison it did not make.
    """
    from pto_checks.results import comparable_quantities, is_finite_number, movement_limit

    src = baseline.get(BASELINE_SOURCE, "the baseline")
    entry = baseline.get("models", {}).get(model)
    if entry is None:
        return Verdict("unchanged_vs_baseline", False,
                       f"model {model!r} is not in {src}: record it with --update-baseline")
    old = comparable_quantities(entry)
    moved, unusable, rows = [], [], []
    if not current:
        unusable.append("no quantity was measured to compare (an empty sweep?)")
    for k, (v, e) in sorted(current.items()):
        if k not in old:
            unusable.append(f"{k} is missing from {src} (models.{model}); record it with --update-baseline")
            continue
        vo, eo = old[k]
        if not is_finite_number(vo):
            unusable.append(f"{k} in {src} (models.{model}) is {vo!r}, not a finite number")
            continue
        if not is_finite_number(v):
            unusable.append(f"{k} measured now is {v!r}, not a finite number (baseline {vo:.4f})")
            continue
        limit = movement_limit(k, e, eo)
        rows.append(f"{k}: {vo:.4f} -> {v:.4f} (limit {limit:.3g})")
        if not abs(v - vo) <= limit:
            moved.append(k)
    parts = []
    if unusable:
        parts.append("NOT COMPARED: " + "; ".join(unusable))
    if moved:
        parts.append("REGRESSION: moved beyond tolerance: " + ", ".join(moved))
    msg = "; ".join(parts or ["unchanged within tolerance"]) + ("; " + "; ".join(rows) if rows else "")
    return Verdict("unchanged_vs_baseline", not (moved or unusable), msg, current, None, None)


def engines_agree(reference: list[dict[str, Any]], candidate: list[dict[str, Any]], ensemble: str,
                  engines: tuple[str, str] = ("ase", "batched")) -> Verdict:
    """Two engines' sweeps of one model agree: per temperature the same phase, and c/a and |P|
    within ``sigma`` combined standard errors or the floors of ``tolerances.engine_equivalence``."""
    import math

    tol = tolerance("engine_equivalence")
    bad, lines = [], []
    for r, c in zip(reference, candidate, strict=True):
        t = r["T_K"]
        d_ca = abs(r["c_over_a"] - c["c_over_a"])
        e_ca = math.hypot(_err(r, "c_over_a_err"), _err(c, "c_over_a_err"))
        d_p = abs(r["P_abs"] - c["P_abs"])
        e_p = math.hypot(_err(r, "P_abs_err"), _err(c, "P_abs_err"))  # |P| with its own error bar
        lim_ca = max(tol["sigma"] * e_ca, tol["c_over_a_floor"])
        lim_p = max(tol["sigma"] * e_p, tol["polarization_floor"])
        lines.append(f"{t:.0f} K: c/a {r['c_over_a']:.4f} vs {c['c_over_a']:.4f} (limit {lim_ca:.4f}), "
                     f"|P| {r['P_abs']:.3f} vs {c['P_abs']:.3f} C/m^2 (limit {lim_p:.3f}), "
                     f"phase {r.get('phase')} vs {c.get('phase')}")
        if r.get("phase") != c.get("phase"):
            bad.append(f"{t:.0f} K phase {r.get('phase')} vs {c.get('phase')}")
        if not d_ca <= lim_ca:
            bad.append(f"{t:.0f} K c/a differs by {d_ca:.4f} > {lim_ca:.4f}")
        if not d_p <= lim_p:
            bad.append(f"{t:.0f} K |P| differs by {d_p:.3f} > {lim_p:.3f} C/m^2")
    ok = not bad
    head = (f"{ensemble.upper()}: {engines[1]} engine {'agrees' if ok else 'DISAGREES'} with the {engines[0]} "
            f"engine" + ("" if ok else ": " + "; ".join(bad)))
    return Verdict(f"engine_equivalence_{ensemble}", ok, head + "\n" + "\n".join(lines), measured=len(bad), reference=0,
                   tolerance=tol["sigma"], unit="", source="tolerances.engine_equivalence")


def _err(row: dict[str, Any], key: str) -> float:
    import math

    v = row.get(key)
    return float(v) if v is not None and math.isfinite(float(v)) else 0.0


# --- accuracy tier (AIMD frames) ------------------------------------------------------------------

def _accuracy_context(functional: str, data_functional: str, subsample: str, reduced: bool) -> str:
    gap = ("" if functional.lower() == data_functional.lower() else
           f": these errors include the {functional}-{data_functional} functional gap, not the model's error alone")
    red = f"REDUCED subsample ({subsample}): indicative only; " if reduced else f"{subsample}; "
    return f"{red}{_trained_on(functional)}, frames {data_functional} AIMD{gap}"


def t_quantile(level: float, dof: float) -> float:
    """Two-sided Student-t quantile at ``level`` with ``dof`` (>= 1) degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, max(float(dof), 1.0)))


def accuracy_bound(check: str, rows: list[dict[str, Any]], key: str, se_key: str, limit: dict[int, float] | float,
                   unit: str, what: str, functional: str, data_functional: str, subsample: str,
                   reduced: bool, scale_key: str | None = None, source: str = "",
                   n_eff_key: str | None = None) -> Verdict:
    """Every temperature's ``rows[i][key]`` (an error) is at most its limit (a number, or per temperature).

    ``se_key``: its standard error, ``n_eff_key``: the effectively independent frames behind it
    (the frames are a correlated time series; :mod:`pto_checks.accuracy.metrics`).  Per
    temperature the two-sided interval ``value -+ t se`` (Student's t with ``n_eff - 1`` degrees of
    freedom, at the ``[statistics]`` confidence level) is decided against the limit: wholly below
    passes, wholly above fails, containing it is undecided.  The verdict FAILS when some
    temperature is decided above, is INCONCLUSIVE when none is but some interval contains the
    limit (or has no error estimate), and PASSES only when every interval lies below.
    """
    level = statistics_settings().confidence_level
    lines, bad, unsure = [], [], []
    measured, intervals = {}, {}
    for r in sorted(rows, key=lambda r: r["temperature_K"]):
        t = int(r["temperature_K"])
        lim = limit[t] if isinstance(limit, dict) else float(limit)
        v, se = float(r[key]), float(r.get(se_key, math.nan))
        n_eff = float(r.get(n_eff_key, math.nan)) if n_eff_key else math.nan
        if not math.isfinite(n_eff):  # no correlation analysis: only the frames' count is known
            n_eff = float(r.get("n_frames", math.nan))
        q = t_quantile(level, n_eff - 1.0) if math.isfinite(n_eff) else math.nan
        lo, hi = (v - q * se, v + q * se) if math.isfinite(se) and math.isfinite(q) else (math.nan, math.nan)
        intervals[t] = Interval(lo, hi, level, unit)
        if math.isfinite(lo) and lo > lim:
            state = "TOO LARGE"
            bad.append(t)
        elif math.isfinite(hi) and hi <= lim:
            state = "ok"
        else:
            why = "the interval contains the limit" if math.isfinite(hi) else "no error estimate"
            state = f"UNDECIDED ({why})"
            unsure.append(t)
        measured[t] = v
        scale = f" (DFT scale {r[scale_key]:.3f})" if scale_key else ""
        lines.append(f"{t} K: {what} {v:.3f} ± {se:.3f} {unit} ({level:.0%} interval [{lo:.3f}, {hi:.3f}], t with "
                     f"n_eff {n_eff:.1f} - 1 dof){scale}, limit {lim:.3f} {unit}: {state}")
    outcome = Outcome.FAIL if bad else Outcome.INCONCLUSIVE if unsure else Outcome.PASS
    verdict_text = {Outcome.PASS: f"{what} within the limit at every temperature",
                    Outcome.FAIL: f"{what} above the limit at {', '.join(f'{t} K' for t in bad)}",
                    Outcome.INCONCLUSIVE: f"INCONCLUSIVE: {what} undecided at {', '.join(f'{t} K' for t in unsure)}"
                                          f" (the {level:.0%} interval contains the limit)"}[outcome]
    if bad and unsure:
        verdict_text += f"; undecided at {', '.join(f'{t} K' for t in unsure)}"
    msg = (f"{verdict_text}; {_accuracy_context(functional, data_functional, subsample, reduced)}\n"
           + "\n".join(lines))
    worst = max(intervals.items(), key=lambda kv: (kv[1].high - (limit[kv[0]] if isinstance(limit, dict) else limit))
                if math.isfinite(kv[1].high) else math.inf, default=(None, None))[1]
    v = Verdict(check, outcome is Outcome.PASS, msg, measured, None, limit, unit, source, outcome=outcome,
                interval=worst)
    v.details = {"confidence": "decided" if outcome is not Outcome.INCONCLUSIVE else "inconclusive",
                 "reduced": reduced, "subsample": subsample, "functional": functional,
                 "data_functional": data_functional, "confidence_level": level,
                 "intervals": {str(t): iv.to_dict() for t, iv in intervals.items()}}
    return v
