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


def _oxygen_fraction(formula: str) -> tuple[int, int]:
    from ase.formula import Formula

    counts = Formula(formula).count()
    return counts.get("O", 0), sum(counts.values())
