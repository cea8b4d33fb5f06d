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


def no_imaginary_modes(f_min_thz: float, q_min: list[float], f_min_all: float, q_all: list[float],
                       functional: str) -> Verdict:
    """No judged phonon below the imaginary threshold (see :func:`phonons.most_negative_mode`)."""
    tol = tolerance("phonon")
    thr = tol["imaginary_threshold_thz"]
    ok = f_min_thz >= thr

    def fmt(q: list[float]) -> str:
        return "(" + ", ".join(f"{x:.3f}" for x in q) + ")"

    msg = (
        f"lowest judged frequency {f_min_thz:.3f} THz at q = {fmt(q_min)} (threshold {thr} THz; "
        f"lowest of all, incl. interpolated acoustic branches, {f_min_all:.3f} THz at "
        f"q = {fmt(q_all)}): " + ("no imaginary modes" if ok else "IMAGINARY MODES: the relaxed "
                                  "tetragonal cell is dynamically unstable")
        + f"; {_trained_on(functional)}"
    )
    return Verdict("no_imaginary_modes", ok, msg, {"f_min_thz": f_min_thz, "q": list(q_min),
                                                   "f_min_all_thz": f_min_all, "q_all": list(q_all)},
                   thr, None, "THz", tol["reasoning"])


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
