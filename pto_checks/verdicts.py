"""Verdicts: a measured value, a reference and a tolerance -> pass or fail, with a message.

A failing verdict's message states the measured value, the reference (and its source), the
tolerance and the functional the model was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pto_checks.reference import functional_reference, load_reference, tolerance


@dataclass
class Verdict:
    """Outcome of one physical check for one model."""

    check: str
    passed: bool
    message: str
    measured: Any = None
    reference: Any = None
    tolerance: Any = None
    unit: str = ""
    source: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = "pass" if self.passed else "fail"
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
    ok = bool(d["stable"])
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
    head = (f"decided by the {name} supercell: "
            + (f"no imaginary modes; lowest frequency {m['f_thz']:.3f} THz at q = {fmt(m['q'])} ({where(m)})"
               + (f", lowest away from Gamma {off['f_thz']:.3f} THz at q = {fmt(off['q'])} ({where(off)})"
                  if (off := d["steps"][-1].get("lowest_off_gamma")) else "")
               if ok else f"IMAGINARY MODE {m['f_thz']:.3f} THz at q = {fmt(m['q'])}, branch {m['branch']} "
               f"({where(m)}): the relaxed P4mm cell is dynamically unstable"))
    msg = (f"{head}. {d['reason']}. Rule: every branch at every q >= {tol['imaginary_threshold_thz']} THz, "
           f"acoustic modes at Gamma >= {tol['acoustic_gamma_thz']} THz; supercells: {history}; "
           f"symprec {phonon.get('symprec')} A; {_trained_on(functional)}")
    v = Verdict("no_imaginary_modes", ok, msg, {"f_thz": m["f_thz"], "q": list(m["q"]), "exact": m["exact"],
                                                "supercell": list(d["decided_by"])},
                tol["imaginary_threshold_thz"], {"acoustic_gamma_thz": tol["acoustic_gamma_thz"],
                                                 "elsewhere_thz": tol["imaginary_threshold_thz"]},
                "THz", tol["source"])
    v.details = {"decision": d}
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


def _oxygen_fraction(formula: str) -> tuple[int, int]:
    from ase.formula import Formula

    counts = Formula(formula).count()
    return counts.get("O", 0), sum(counts.values())


# ---------------------------------------------------------------------------------------------
# Finite-temperature verdicts.  ``sweep``: the dict of the npt_sweep / nvt_sweep fixtures.


def _sweep_context(sweep: dict[str, Any]) -> str:
    p = sweep["protocol"]
    reduced = (f"REDUCED protocol '{p.name}' ({p.md.supercell}^3 cells, {p.md.steps} steps of "
               f"{p.md.timestep_fs} fs per temperature): qualitative only. " if p.reduced else "")
    return (f"{reduced}{sweep['ensemble'].upper()} ({sweep['integrator']}) sweep:\n{sweep['table']}")


def _sweep_verdict(check: str, ok: bool, what: str, sweep: dict[str, Any], functional: str,
                   measured: Any = None, tol: Any = None) -> Verdict:
    msg = f"{what}; {_trained_on(functional)}\n{_sweep_context(sweep)}"
    v = Verdict(check, ok, msg, measured, None, tol)
    v.details = {"protocol": sweep["protocol"].name, "reduced": sweep["protocol"].reduced,
                 "ensemble": sweep["ensemble"], "integrator": sweep["integrator"]}
    return v


def no_melting_or_instability(sweep: dict[str, Any], functional: str) -> Verdict:
    """No temperature of the sweep is molten or unstable (blow-up)."""
    bad = [r for r in sweep["rows"] if r["phase"] in ("molten", "unstable")]
    what = ("crystal at every temperature" if not bad else "; ".join(
        f"{r['phase'].upper()} at {r['T_K']:.0f} K"
        + (f" ({r['failure']['reason']}, step {r['failure']['step']})" if r.get("failure") else
           f" (Lindemann {r['lindemann']:.3f}, order {r['order']:.2f})") for r in bad))
    return _sweep_verdict("no_melting_or_instability", not bad, what, sweep, functional,
                          [r["phase"] for r in sweep["rows"]], tolerance("melting"))


def _row_at(sweep: dict[str, Any], temperature: float) -> dict[str, Any]:
    return min(sweep["rows"], key=lambda r: abs(r["T_K"] - temperature))


def polar_at_low_temperature(sweep: dict[str, Any], functional: str) -> Verdict:
    """The lowest temperature of the sweep (300 K) is tetragonal and polar."""
    r = sweep["rows"][0]
    ok = r["phase"] == "tetragonal"
    return _sweep_verdict("polar_at_300K", ok, f"phase at {r['T_K']:.0f} K is {r['phase']} "
                          f"(c/a {r['c_over_a']:.4f}, |P| {r['P_abs']:.3f} C/m^2; expected tetragonal)",
                          sweep, functional, r["phase"], tolerance("phase"))


def cubic_above_tc(sweep: dict[str, Any], functional: str) -> Verdict:
    """The top of the sweep is cubic, and no temperature above the first cubic one is polar again."""
    phases = [r["phase"] for r in sweep["rows"]]
    top = sweep["rows"][-1]
    first_cubic = next((i for i, p in enumerate(phases) if p == "cubic"), None)
    reentrant = first_cubic is not None and any(p != "cubic" for p in phases[first_cubic:])
    ok = top["phase"] == "cubic" and not reentrant
    what = (f"phase at the top of the sweep ({top['T_K']:.0f} K) is {top['phase']} "
            f"(c/a {top['c_over_a']:.4f}, |P| {top['P_abs']:.3f} C/m^2)"
            + ("; not cubic at every temperature above the first cubic one" if reentrant else "")
            + ("" if ok else ": the paraelectric phase is never reached"))
    return _sweep_verdict("cubic_above_tc", ok, what, sweep, functional, phases, tolerance("phase"))


def no_supertetragonal(sweep: dict[str, Any], functional: str) -> Verdict:
    """No temperature has c/a above the supertetragonal threshold."""
    thr = tolerance("phase")["supertetragonal_min"]
    bad = [r for r in sweep["rows"] if r["phase"] == "supertetragonal"]
    what = ("no supertetragonal phase" if not bad else "SUPERTETRAGONAL at " + ", ".join(
        f"{r['T_K']:.0f} K (c/a {r['c_over_a']:.3f})" for r in bad)) + f" (threshold c/a >= {thr})"
    return _sweep_verdict("no_supertetragonal", not bad, what, sweep, functional,
                          [r["c_over_a"] for r in sweep["rows"]], thr)


def tc_vs_experiment(sweep: dict[str, Any], functional: str) -> Verdict:
    """Tc from the sweep within tolerance of experiment (760 K)."""
    ref = load_reference()
    exp = ref["experiment"]["tc"]
    tol = tolerance("tc")["value"]
    tc = sweep["tc"]
    if tc["tc"] is None:
        ok, what = False, "no tetragonal-to-cubic transition found in the sweep"
    else:
        ok = abs(tc["tc"] - exp["value"]) <= tol
        what = (f"Tc = {tc['tc']:.0f} +- {tc['resolution']:.0f} K ({tc['method']}) vs experiment "
                f"{exp['value']} K ({exp['source']}): |diff| {abs(tc['tc'] - exp['value']):.0f} K "
                f"{'within' if ok else 'outside'} tolerance {tol} K")
    v = _sweep_verdict("tc_vs_experiment", ok, what, sweep, functional, tc["tc"], tol)
    v.reference, v.unit, v.source = exp["value"], "K", exp["source"]
    return v


def polarization_vanishes(sweep: dict[str, Any], functional: str) -> Verdict:
    """NVT: |Pz| at the top of the sweep below the polar threshold."""
    thr = tolerance("phase")["polar_min_c_per_m2"]
    top = sweep["rows"][-1]
    ok = abs(top["Pz"]) < thr and top["phase"] not in ("molten", "unstable")
    what = (f"|Pz| at {top['T_K']:.0f} K = {abs(top['Pz']):.3f} C/m^2 (threshold {thr}, at the imposed "
            f"c/a = 1.06); phase {top['phase']}" + ("" if ok else ": the polarization does not vanish"))
    return _sweep_verdict("polarization_vanishes_above_tc", ok, what, sweep, functional, top["Pz"], thr)


def unchanged_vs_baseline(model: str, baseline: dict[str, Any], current: dict[str, tuple[float, float]]) -> Verdict:
    """Quantities ``{name: (value, std error)}`` vs the baseline results (CI gate).

    Moved = |diff| > max(threshold, 2 x combined error); a model absent from the baseline fails
    with the command that records it.
    """
    from pto_checks.results import comparable_quantities, movement_limit

    entry = baseline.get("models", {}).get(model)
    if entry is None:
        return Verdict("unchanged_vs_baseline", False,
                       f"model {model!r} is not in the baseline: record it with --update-baseline")
    old = comparable_quantities(entry)
    moved, rows = [], []
    for k, (v, e) in sorted(current.items()):
        if k not in old:
            continue
        vo, eo = old[k]
        limit = movement_limit(k, e, eo)
        rows.append(f"{k}: {vo:.4f} -> {v:.4f} (limit {limit:.3g})")
        if abs(v - vo) > limit:
            moved.append(k)
    msg = ("REGRESSION: moved beyond tolerance: " + ", ".join(moved) if moved else
           "unchanged within tolerance") + "; " + "; ".join(rows)
    return Verdict("unchanged_vs_baseline", not moved, msg, current, None, None)


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
        e_p = math.hypot(_err(r, "Pz_err"), _err(c, "Pz_err"))
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
