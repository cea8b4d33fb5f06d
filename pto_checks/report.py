"""Reports: the study's figures (matplotlib, Agg; SVG + 300 dpi PNG), a self-contained HTML page,
a Markdown summary, the verdict matrix (HTML, Markdown, terminal), the export of MD files into the
report folder, and the comparison of two results files (nightly regressions, CI baselines).

Reads only results.json dicts (and the files they name), so a report can be rebuilt from saved
results without rerunning anything: ``pto-checks report RESULTS.json... -o DIR``.  Figures are
rebuilt from the data every time, into a fresh folder that replaces ``DIR/figures`` whole, so a
figure whose data is gone never survives.
"""

from __future__ import annotations

import base64
import html
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pto_checks.results import (
    comparable_quantities,
    finite_or_zero,
    is_finite_number,
    movement_limit,
    protocol_label,
    status_of,
)
from pto_checks.safe_files import KEEP_NEWEST, UnsafePath, claim_report_dir, copy_file, prune, shared_mode, write_text

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision
# deficiency.  Yellow last (weak on white); beyond eight models the line style changes too.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
LINESTYLES = ("-", "--", ":", "-.")
#: one marker per :class:`pto_checks.phase.Phase` value (undecided has its own: never drawn as a phase)
PHASE_MARKERS = {"tetragonal": "o", "cubic": "s", "supertetragonal": "^", "molten": "X", "unstable": "D",
                 "undecided": "P"}
STATUS_SYMBOL = {"pass": "✔ pass", "fail": "✘ fail", "inconclusive": "? inconclusive", "skip": "– skip",
                 "error": "⚠ error"}
KNOWN_STATUSES = tuple(STATUS_SYMBOL)
# verdict-matrix groups, in the order of the study; a check belongs to the first marker it carries
GROUPS = ("sanity", "conservation", "static", "phonon", "accuracy", "npt", "nvt", "equivalence", "regression",
          "benchmark")
MATRIX_MODELS_PER_TABLE = 10  # wider sweeps wrap into further tables


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.titlesize": 9,
                         "legend.fontsize": 8, "legend.frameon": False})
    return plt


def _style(i: int) -> dict[str, Any]:
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "ls": LINESTYLES[(i // len(OKABE_ITO)) % len(LINESTYLES)]}


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _save(fig, base: Path) -> tuple[Path, Path]:
    """``base.svg`` and ``base.png`` (300 dpi), tight bounding box (legends outside the axes fit)."""
    svg, png = base.with_suffix(".svg"), base.with_suffix(".png")
    fig.savefig(svg, bbox_inches="tight")
    fig.savefig(png, dpi=300, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return svg, png


def _phase_gid(label: str, row: dict[str, Any], phase: str) -> str:
    """SVG id of one phase marker ('phase|<model>|<T>|<phase>'): the drawn phase can be read back."""
    return f"phase|{_safe(label)}|{_num(row.get('T_K')):g}|{phase}"


def _nvt_order(row: dict[str, Any]) -> float:
    """The NVT order parameter drawn: the mean per-frame |Pz| (the quantity the phase rule decides;
    |<Pz>| of a Pz that flips sign is near 0 while every frame is polar)."""
    v = row.get("Pz_frame_abs")
    return abs(_num(row.get("Pz"))) if v is None else _num(v)


def _phase_handles(phases: set[str]):
    from matplotlib.lines import Line2D

    return [Line2D([], [], ls="none", marker=PHASE_MARKERS.get(p, "d"), color="0.35", mfc="white", ms=6,
                   label=p) for p in [*PHASE_MARKERS, *sorted(phases - set(PHASE_MARKERS))] if p in phases]


def _outside_legend(ax, handles, title: str | None = None) -> None:
    if handles:
        ax.legend(handles=handles, title=title, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                  title_fontsize=8, alignment="left")


def plot_npt(series: list[tuple[str, list[dict[str, Any]]]], base: Path, tc_K: float | None,
             tetragonal_min: float, title: str = "") -> tuple[Path, Path]:
    """NPT sweep(s): a and c vs T (top) and c/a vs T with the phase at each point (bottom), error
    bars from block averages, the cubic threshold and the experimental Tc.  ``series``: one
    (label, rows) per model; several overlay (colour per model, marker per phase)."""
    plt = _plt()
    from matplotlib.lines import Line2D

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6.0, 5.6))
    phases: set[str] = set()
    model_handles = []
    for i, (label, rows) in enumerate(series):
        st = _style(i)
        temps = [_num(r.get("T_K")) for r in rows]
        for key, ls in (("a", st["ls"]), ("c", "--" if st["ls"] == "-" else st["ls"])):
            top.errorbar(temps, [_num(r.get(key)) for r in rows],
                         yerr=[finite_or_zero(r.get(f"{key}_err")) for r in rows],
                         color=st["color"], ls=ls, lw=1.2, capsize=2, marker="." if key == "a" else None)
        bottom.errorbar(temps, [_num(r.get("c_over_a")) for r in rows],
                        yerr=[finite_or_zero(r.get("c_over_a_err")) for r in rows], color=st["color"], ls=st["ls"],
                        lw=1.2, capsize=2)
        for r in rows:
            phase = str(r.get("phase", "?"))
            phases.add(phase)
            bottom.plot(_num(r.get("T_K")), _num(r.get("c_over_a")), ls="none", marker=PHASE_MARKERS.get(phase, "d"),
                        ms=6.5, mec=st["color"], mfc="white", mew=1.4, zorder=3, gid=_phase_gid(label, r, phase))
        model_handles.append(Line2D([], [], color=st["color"], ls=st["ls"], label=label))
    bottom.axhline(1 + tetragonal_min, color="0.5", ls=":", lw=1)
    for ax in (top, bottom):
        if tc_K:
            ax.axvline(tc_K, color="0.2", ls="-.", lw=0.9)
        ax.grid(alpha=0.25, lw=0.5)
    top.set_ylabel("Lattice parameter (Å)")
    bottom.set_ylabel("c/a")
    bottom.set_xlabel("Temperature (K)")
    if title:
        top.set_title(title)
    lines = [Line2D([], [], color="0.35", ls="-", marker=".", label="a"),
             Line2D([], [], color="0.35", ls="--", label="c")]
    _outside_legend(top, (model_handles if len(series) > 1 else []) + lines)
    refs = [Line2D([], [], color="0.5", ls=":", label=f"cubic below c/a = {1 + tetragonal_min:g}")]
    if tc_K:
        refs.append(Line2D([], [], color="0.2", ls="-.", label=f"experimental Tc = {tc_K:g} K"))
    _outside_legend(bottom, _phase_handles(phases) + refs, title="phase")
    return _save(fig, base)


def plot_nvt(series: list[tuple[str, list[dict[str, Any]]]], base: Path, tc_K: float | None,
             polar_min: float, title: str = "") -> tuple[Path, Path]:
    """NVT sweep(s) at the imposed lattice: the mean per-frame |Pz| vs T with its error bars, the phase at
    each point, the polar threshold and the experimental Tc."""
    plt = _plt()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    phases: set[str] = set()
    model_handles = []
    for i, (label, rows) in enumerate(series):
        st = _style(i)
        temps = [_num(r.get("T_K")) for r in rows]
        ax.errorbar(temps, [_nvt_order(r) for r in rows],
                    yerr=[finite_or_zero(r.get("Pz_frame_abs_err", r.get("Pz_err"))) for r in rows],
                    color=st["color"], ls=st["ls"], lw=1.2, capsize=2)
        for r in rows:
            phase = str(r.get("phase", "?"))
            phases.add(phase)
            ax.plot(_num(r.get("T_K")), _nvt_order(r), ls="none", marker=PHASE_MARKERS.get(phase, "d"),
                    ms=6.5, mec=st["color"], mfc="white", mew=1.4, zorder=3, gid=_phase_gid(label, r, phase))
        model_handles.append(Line2D([], [], color=st["color"], ls=st["ls"], label=label))
    ax.axhline(polar_min, color="0.5", ls=":", lw=1)
    if tc_K:
        ax.axvline(tc_K, color="0.2", ls="-.", lw=0.9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.25, lw=0.5)
    ax.set_xlabel("Temperature (K)")
    ax.set_ylabel("per-frame |Pz| (C/m²)")
    if title:
        ax.set_title(title)
    refs = [Line2D([], [], color="0.5", ls=":", label=f"polar above {polar_min:g} C/m²")]
    if tc_K:
        refs.append(Line2D([], [], color="0.2", ls="-.", label=f"experimental Tc = {tc_K:g} K"))
    _outside_legend(ax, (model_handles if len(series) > 1 else []) + _phase_handles(phases) + refs)
    return _save(fig, base)


def plot_ground_states(data: dict[str, Any], base: Path) -> tuple[Path, Path] | None:
    """Relaxed (0 K) a vs c/a of every model against LDA, PBE, PBEsol and experiment."""
    from matplotlib.lines import Line2D

    from pto_checks.reference import load_reference

    pts = [(name, m["quantities"]["ground_state"]) for name, m in data["models"].items()
           if "a" in m.get("quantities", {}).get("ground_state", {})]
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    refs = load_reference()["references"]
    for key, ref in refs.items():
        if "a" in ref and "c_over_a" in ref:
            exp = key == "experiment"
            ax.plot(ref["a"], ref["c_over_a"], "*", ms=13, color="k" if exp else "0.55", zorder=2)
            ax.annotate("experiment" if exp else key.upper().replace("PBESOL", "PBEsol"), (ref["a"], ref["c_over_a"]),
                        textcoords="offset points", xytext=(7, -3), fontsize=8, color="k" if exp else "0.35")
    handles = [Line2D([], [], ls="none", marker="*", ms=11, color="0.55", label="DFT (LDA, PBE, PBEsol)"),
               Line2D([], [], ls="none", marker="*", ms=11, color="k", label="experiment")]
    markers = "ovs^DPXhp<>"
    for i, (name, g) in enumerate(pts):
        st = _style(i)
        mk = markers[i % len(markers)]
        ax.plot(g["a"]["value"], g["c_over_a"]["value"], ls="none", marker=mk, ms=8, color=st["color"],
                mec="k", mew=0.5, zorder=3)
        handles.append(Line2D([], [], ls="none", marker=mk, ms=7, color=st["color"], mec="k", mew=0.5, label=name))
    ax.margins(0.12)
    ax.grid(alpha=0.25, lw=0.5)
    ax.set_xlabel("a (Å)")
    ax.set_ylabel("c/a")
    ax.set_title("Relaxed P4mm PbTiO3 at 0 K")
    _outside_legend(ax, handles)
    return _save(fig, base)


def plot_speed(data: dict[str, Any], base: Path) -> tuple[Path, Path] | None:
    """MD steps per second vs number of atoms, per model and engine (from the benchmark section)."""
    from matplotlib.lines import Line2D

    series = {name: m["quantities"]["benchmark"]["md_speed"]["value"] for name, m in data["models"].items()
              if "md_speed" in m.get("quantities", {}).get("benchmark", {})}
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    handles, engines = [], set()
    for i, (name, rows) in enumerate(series.items()):
        st = _style(i)
        for engine, (mk, ls) in (("ase", ("o", "-")), ("batched", ("s", "--"))):
            sel = sorted((r for r in rows if r.get("engine", "ase") == engine), key=lambda r: r["n_atoms"])
            if sel:  # replica-steps/s for the batched engine (all its replicas' steps count)
                engines.add(engine)
                ax.loglog([r["n_atoms"] for r in sel], [r.get("replica_steps_per_s", r["steps_per_s"]) for r in sel],
                          marker=mk, ls=ls, color=st["color"])
        handles.append(Line2D([], [], color=st["color"], label=name))
    handles.append(Line2D([], [], color="0.35", marker="o", ls="-", label="ASE engine"))
    if "batched" in engines:
        handles.append(Line2D([], [], color="0.35", marker="s", ls="--", label="batched engine"))
    ax.grid(alpha=0.25, lw=0.5, which="both")
    ax.set_xlabel("Atoms (per replica)")
    ax.set_ylabel("MD steps per second\n(batched: replica-steps per second)")
    _outside_legend(ax, handles)
    return _save(fig, base)


# --- captions ----------------------------------------------------------------------------------

def _short(check_id: str) -> str:
    """``test_static.py::test_delta_e_vs_pbesol[mtk]`` -> ``delta e vs pbesol [mtk]``."""
    name = check_id.split("::")[-1]
    return name.removeprefix("test_").replace("_", " ").replace("[", " [")


def _symbol(status: str) -> str:
    return STATUS_SYMBOL.get(status, status)


def protocol_text(label: str, data: dict[str, Any], md: bool = False) -> str:
    """``protocol smoke (reduced: qualitative only; 2×2×2 cells = 40 atoms, 150 steps of 2 fs per
    temperature)`` from the protocol recorded under ``label``."""
    proto = data.get("protocols", {}).get(label) or {}
    bits = []
    if proto.get("overrides"):  # a loosened protocol is never shown as the named one alone
        bits.append("overrides " + ", ".join(map(str, proto["overrides"])))
    if md and proto.get("reduced"):  # 0 K and phonon settings are the same in every named protocol
        bits.append("reduced: qualitative only")
    m = proto.get("md") or {}
    if md and m:
        n = m.get("supercell")
        bits.append(f"{n}×{n}×{n} cells = {5 * n ** 3} atoms, {m.get('steps')} steps of {m.get('timestep_fs')} fs "
                    f"per temperature" if isinstance(n, int) else f"{m.get('steps')} steps per temperature")
    return f"protocol {label}" + (f" ({'; '.join(bits)})" if bits else "")


def _related(entry: dict[str, Any], marker: str, integrator: str | None = None) -> list[str]:
    """Check ids of ``entry`` with ``marker`` (for NPT, those of ``integrator``: ``[mtk]`` ids)."""
    out = []
    for tid, chk in entry.get("checks", {}).items():
        if marker not in chk.get("markers", []):
            continue
        if integrator is not None and tid.endswith("]") != (integrator != "melchionna"):
            continue
        out.append(tid)
    return out


def _verdict_summary(entry: dict[str, Any], tids: list[str]) -> str:
    """``all 6 static checks pass`` / ``4 of 6 pass; fail: delta e vs pbesol; skip: ...``."""
    if not tids:
        return "no verdict recorded"
    by: dict[str, list[str]] = {}
    for t in tids:
        by.setdefault(status_of(entry["checks"][t]), []).append(_short(t))
    npass = len(by.pop("pass", []))
    if not by:
        return f"all {npass} checks pass"
    return f"{npass} of {len(tids)} pass; " + "; ".join(f"{st}: {', '.join(names)}" for st, names in by.items())


def _verdict_text(entry: dict[str, Any], tids: list[str]) -> str:
    if not tids:
        return "no verdict recorded"
    return "; ".join(f"{_short(t)}: {entry['checks'][t]['status']}" for t in tids)


# --- figures -----------------------------------------------------------------------------------

@dataclass
class Figure:
    """One figure of the report: ``png`` (300 dpi) and ``svg`` under ``figures/``, its caption,
    and the section it belongs to (a model's name, or ``""`` for the figures across models)."""

    name: str
    caption: str
    section: str
    png: Path
    svg: Path | None


def _safe(name: str) -> str:
    from pto_checks.safe_files import safe_name

    return safe_name(name)


def make_figures(data: dict[str, Any], figdir: Path) -> list[Figure]:
    """Every figure of a report into ``figdir`` (which must be empty or new)."""
    from pto_checks.reference import load_reference

    ref = load_reference()
    tc_K = ref.get("experiment", {}).get("tc", {}).get("value")
    phase_tol = ref["tolerances"]["phase"]
    figdir.mkdir(parents=True, exist_ok=True)
    figs: list[Figure] = []
    models = data.get("models", {})

    got = plot_ground_states(data, figdir / "ground_state")
    if got:
        per = "; ".join(
            f"{n} (protocol {protocol_label(m['quantities']['ground_state']['a'], data)}): static verdicts "
            f"{_verdict_summary(m, _related(m, 'static'))}"
            for n, m in models.items() if "a" in m.get("quantities", {}).get("ground_state", {}))
        figs.append(Figure("ground_state", "Relaxed (0 K) lattice parameter a and tetragonality c/a of P4mm PbTiO3, "
                           "each model against the LDA, PBE and PBEsol values and experiment (stars). " + per + ".",
                           "", got[1], got[0]))

    # sweeps: the overlay across models first, then per model
    keys = sorted({k for m in models.values() for k in m.get("quantities", {}).get("md", {})})
    for key in keys:
        ens, integ = key.split("_", 1)
        with_sweep = [(n, m) for n, m in models.items() if key in m.get("quantities", {}).get("md", {})]
        per_model = []
        for n, m in with_sweep:
            q = m["quantities"]["md"][key]
            per_model.append((n, m, q["value"]["rows"], protocol_label(q, data)))
        marker = ens
        if len(per_model) > 1:
            series = [(n, rows) for n, _, rows, _ in per_model]
            used = {lab for _, _, _, lab in per_model}
            labels = (_cap(protocol_text(used.pop(), data, md=True)) if len(used) == 1 else
                      "Protocols: " + "; ".join(f"{n}: {lab}" for n, _, _, lab in per_model))
            base = figdir / f"{key}_all_models"
            if ens == "npt":
                svg, png = plot_npt(series, base, tc_K, phase_tol["tetragonal_min"], title=f"NPT ({integ}), all models")
                what = (f"c/a, a and c vs temperature, NPT ({integ}), all models overlaid (colour per model, "
                        "marker per phase)")
            else:
                svg, png = plot_nvt(series, base, tc_K, phase_tol["polar_min_c_per_m2"],
                                    title=f"NVT ({integ}), all models")
                what = f"|Pz| vs temperature, NVT ({integ}) at the imposed lattice, all models overlaid"
            figs.append(Figure(base.name, f"{what}. {labels}.", "", png, svg))
        for n, m, rows, lab in per_model:
            base = figdir / f"{key}_{_safe(n)}"
            verdicts = _verdict_text(m, _related(m, marker, integ if ens == "npt" else None))
            if ens == "npt":
                svg, png = plot_npt([(n, rows)], base, tc_K, phase_tol["tetragonal_min"],
                                    title=f"{n}: NPT ({integ}), protocol {lab}")
                what = (f"{n}: NPT ({integ}) heating sweep: a and c (top) and c/a with the phase at each temperature "
                        f"(bottom), block-average error bars")
            else:
                svg, png = plot_nvt([(n, rows)], base, tc_K, phase_tol["polar_min_c_per_m2"],
                                    title=f"{n}: NVT ({integ}), protocol {lab}")
                what = (f"{n}: NVT ({integ}) heating sweep at the imposed lattice: |Pz| with block-average error bars "
                        f"and the phase at each temperature")
            figs.append(Figure(base.name, f"{what}. {_cap(protocol_text(lab, data, md=True))}. "
                               f"Verdicts: {verdicts}.", n, png, svg))

    for n, m in models.items():
        ph = m.get("quantities", {}).get("phonons", {})
        files = ph.get("files", {}).get("value", {})
        plot = files.get("plot")
        if not plot or not Path(plot).is_file():
            continue
        base = figdir / f"phonons_{_safe(n)}"
        png = base.with_suffix(".png")
        try:
            copy_file(plot, png)
        except UnsafePath:
            continue
        svg = None
        if files.get("plot_svg") and Path(files["plot_svg"]).is_file():
            svg = base.with_suffix(".svg")
            try:
                copy_file(files["plot_svg"], svg)
            except UnsafePath:
                svg = None
        lab = protocol_label(ph.get("f_min"), data)
        sc = (data.get("protocols", {}).get(lab) or {}).get("phonon", {}).get("supercell")
        bits = [f"{n}: harmonic phonon bands of the model's relaxed P4mm cell (phonopy finite displacements"
                + (f", {'×'.join(map(str, sc))} supercell" if sc else "") + f"; {protocol_text(lab, data)}); "
                "imaginary frequencies are drawn as negative numbers"]
        if "f_min" in ph:
            bits.append(f"lowest judged frequency {ph['f_min']['value']:.3f} THz at q = {_q(ph['f_min'].get('q'))}")
        if "f_min_all" in ph and ph["f_min_all"]["value"] < ph.get("f_min", {}).get("value", math.inf) - 1e-9:
            bits.append(f"lowest anywhere {ph['f_min_all']['value']:.3f} THz at q = {_q(ph['f_min_all'].get('q'))}, "
                        "on an acoustic branch between the q-points commensurate with the supercell: a Fourier-"
                        "interpolation artefact of the finite supercell, reported but not judged "
                        "(reference_data/pto.toml, tolerances.phonon)")
        bits.append(f"verdict: {_verdict_text(m, _related(m, 'phonon'))}")
        figs.append(Figure(base.name, "; ".join(bits) + ".", n, png, svg))

    for n, m in models.items():  # the accuracy tier's figures (drawn by the tier, PNG)
        acc = m.get("quantities", {}).get("accuracy", {})
        files = acc.get("files", {}).get("value", {})
        sub = acc.get("subsample", {}).get("value", {}).get("text")
        functional = m.get("spec", {}).get("functional", "?")
        for key, what in (("parity", "force components, model vs DFT, per species (colour: AIMD temperature)"),
                          ("errors_vs_T", "force, relative-energy and stress errors vs AIMD temperature, with "
                                          "the verdicts' limits dashed")):
            src = files.get(key)
            if not src or not Path(src).is_file():
                continue
            base = figdir / f"accuracy_{_safe(n)}_{key}"
            png = base.with_suffix(".png")
            try:
                copy_file(src, png)
            except UnsafePath:
                continue
            lab = protocol_label(acc["files"], data)
            caption = (f"{n} (trained on {functional}) against PbTiO3 PBEsol ab initio MD frames: {what}; "
                       f"{protocol_text(lab, data)}" + (f"; frames: {sub}" if sub else "")
                       + f"; verdict: {_verdict_text(m, _related(m, 'accuracy'))}.")
            figs.append(Figure(base.name, caption, n, png, None))

    got = plot_speed(data, figdir / "speed")
    if got:
        figs.append(Figure("speed", "MD speed vs number of atoms, per model and engine (log-log; the batched "
                           "engine counts the steps of all its replicas).", "", got[1], got[0]))
    return figs


def _q(q: Any) -> str:
    try:
        return "(" + ", ".join(f"{float(x):.3g}" for x in q) + ")"
    except TypeError:
        return "?"


def _engine_text(data: dict[str, Any]) -> str:
    """'MD engine ase' / 'MD engines ase, batched' from the sweeps recorded, or 'no MD'."""
    engines = sorted({q.get("value", {}).get("engine", "ase")
                      for m in data.get("models", {}).values()
                      for q in m.get("quantities", {}).get("md", {}).values() if isinstance(q, dict)})
    if not engines:
        return "no MD sweep recorded"
    return f"MD engine{'s' if len(engines) > 1 else ''} {', '.join(engines)}"


# --- MD files into the report folder ----------------------------------------------------------

def export_md_files(rows: list[dict[str, Any]], report_dir: str | Path, model: str, sweep: str) -> list[dict[str, str]]:
    """Copy each temperature's ``trajectory.extxyz`` and ``samples.csv`` from its cache folder
    (``row["folder"]``) into ``report_dir/md/<model>/<sweep>/<T>K_*`` (an atomic copy, a new file:
    never a hard link, so editing the report's copy never edits the cache; a link in the entry is
    not followed, a link at the destination is replaced); return per row
    ``{"trajectory": ..., "samples": ...}``, paths relative to ``report_dir`` (what results.json links)."""
    report_dir = Path(report_dir)
    dst_dir = report_dir / "md" / _safe(model) / _safe(sweep)
    out = []
    for r in rows:
        files: dict[str, str] = {}
        folder = Path(r["folder"]) if r.get("folder") else None
        for name, key in (("trajectory.extxyz", "trajectory"), ("samples.csv", "samples")):
            src = folder / name if folder else None
            if src is None or src.is_symlink() or not src.is_file():
                continue
            dst = dst_dir / f"{_num(r.get('T_K')):04.0f}K_{name}"
            copy_file(src, dst)
            files[key] = dst.relative_to(report_dir).as_posix()
        out.append(files)
    return out


# --- verdict matrix ----------------------------------------------------------------------------

def _checks(data: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    for m in data["models"].values():
        for tid in m.get("checks", {}):
            seen.setdefault(tid, None)
    return list(seen)


def _group(data: dict[str, Any], tid: str) -> str:
    for m in data["models"].values():
        chk = m.get("checks", {}).get(tid)
        if chk:
            for g in GROUPS:
                if g in chk.get("markers", []):
                    return g
    return "other"


def matrix_groups(data: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Check ids grouped by stage (sanity, static, phonon, npt, nvt, ...), in the study's order."""
    by: dict[str, list[str]] = {}
    for tid in _checks(data):
        by.setdefault(_group(data, tid), []).append(tid)
    return [(g, by[g]) for g in (*GROUPS, "other") if g in by]


def outcome_classes(entry: dict[str, Any]) -> str:
    """The NPT outcome class(es) of a model's sweeps (``quantities.md.npt_*.value.outcome_class``),
    e.g. 'transition' or 'melchionna: transition; mtk: re-entrant'; '' when none was run."""
    md = entry.get("quantities", {}).get("md", {})
    found = [(k.removeprefix("npt_"), q["value"]["outcome_class"]["class"]) for k, q in sorted(md.items())
             if k.startswith("npt_") and isinstance(q.get("value"), dict) and q["value"].get("outcome_class")]
    if len(found) == 1:
        return found[0][1]
    return "; ".join(f"{i}: {c}" for i, c in found)


def study_table(data: dict[str, Any]) -> list[str]:
    """Markdown table: per model of the study (``reference_data/pto.toml [[study.models]]``), the
    study's finding and, for a model that ran here (its registry name in ``data``), the harness's
    NPT outcome class and Tc verdict beside it, and why they differ where they do."""
    from pto_checks.reference import load_reference

    rows = ["| model (functional) | the study's finding | harness here | agreement |", "|---|---|---|---|"]
    for m in load_reference()["study"].get("models", []):
        entry = data.get("models", {}).get(m.get("registry") or "")
        here, agree = "not run here", ""
        if entry is not None:
            cls = outcome_classes(entry)
            tc = next((c for t, c in entry.get("checks", {}).items() if "tc_vs_experiment" in t), None)
            here = (f"class: {cls or 'no NPT sweep'}" + (f"; tc_vs_experiment {tc['status']}" if tc else "")
                    + f" ({_model_protocols(entry, data)})")
            md = entry.get("quantities", {}).get("md", {})
            texts = [q["value"]["outcome_class"]["text"] for k, q in sorted(md.items())
                     if k.startswith("npt_") and isinstance(q.get("value"), dict) and q["value"].get("outcome_class")]
            if not m.get("npt_class"):
                agree = "the study's class is not recorded here"
            elif not cls:
                agree = "no NPT sweep recorded"
            elif cls == m["npt_class"]:
                agree = "agrees"
            else:
                reduced = any((data.get("protocols", {}).get(str(q.get("protocol", ""))) or {}).get(
                    "reduced", str(q.get("protocol", "")) != "paper") for q in md.values())
                agree = (f"DIFFERS: the harness decided '{'; '.join(texts)}'"
                         + ("; under a reduced protocol (smaller cells, shorter runs than the study's), where "
                            "undecided temperatures and finite-size hysteresis move the class" if reduced else ""))
        rows.append(f"| {m['name']} ({m['functional']}) | {m['finding']} | {here} | {agree} |")
    return rows


def _group_protocols(entry: dict[str, Any], tids: list[str], data: dict[str, Any]) -> str:
    """The protocol label(s) of a group of checks, each with its overrides (``smoke+custom
    (static.fmax=1.0)``)."""
    labels = sorted({protocol_label(entry["checks"][t], data) for t in tids if t in entry.get("checks", {})})
    out = []
    for lab in labels:
        over = (data.get("protocols", {}).get(lab) or {}).get("overrides") or []
        out.append(f"{lab} ({', '.join(map(str, over))})" if over else lab)
    return ", ".join(out)


def gate_text(data: dict[str, Any]) -> str | None:
    """The header line of a gate run that differed from its baseline's protocol (``--allow-protocol-change``)."""
    gate = data.get("harness", {}).get("gate") or {}
    if not gate.get("protocol_change"):
        return None
    return (f"Gate against {gate.get('baseline')} with --allow-protocol-change: this run's protocol differs from "
            f"the baseline's in {'; '.join(map(str, gate['protocol_change']))}")


def _chunks(names: list[str], n: int) -> list[list[str]]:
    return [names[i:i + n] for i in range(0, len(names), n)] or [[]]


def _breakable(name: str) -> str:
    """A model name, HTML-escaped, with line-break opportunities after / : - _ . (long paths wrap
    at their separators instead of mid-word)."""
    out = html.escape(name)
    for sep in "/:-_.":
        out = out.replace(sep, sep + "<wbr>")
    return out


def _status_class(status: str) -> str:
    return f"st-{status}" if status in KNOWN_STATUSES else "st-other"


def _versions(m: dict[str, Any]) -> str:
    spec = m.get("spec", {})
    pv = ", ".join(f"{k} {v}" for k, v in spec.get("package_versions", {}).items())
    env = m.get("environment")  # set by `pto-checks run` across environments
    where = f"; environment {env['key']} ({env['python']})" if env else ""
    return (f"{spec.get('family', '?')} {spec.get('version', '?')}, trained on {spec.get('functional', '?')}; "
            f"weights {str(spec.get('fingerprint', '?'))[:12]}; {pv}{where}")


def terminal_matrix(statuses: dict[str, dict[str, str]], width: int = 120) -> list[str]:
    """The verdict matrix as text lines: checks as rows, models as columns (``M1``, ``M2``... with
    a key below when the names do not fit ``width``).  ``statuses[model][check id] = status``."""
    word = {"pass": "pass", "fail": "FAIL", "skip": "skip", "error": "ERROR", "inconclusive": "?"}
    models = list(statuses)
    checks: dict[str, None] = {}
    for per in statuses.values():
        for tid in per:
            checks.setdefault(tid, None)
    if not models or not checks:
        return []
    rows = [_short(t) for t in checks]
    first = min(max(len(r) for r in rows), 44)
    heads = models
    colw = max(6, *(len(h) for h in heads))
    if first + (colw + 1) * len(models) > width:
        heads = [f"M{i + 1}" for i in range(len(models))]
        colw = max(6, *(len(h) for h in heads))
    lines = [" " * first + "".join(f" {h:>{colw}}" for h in heads)]
    for tid, label in zip(checks, rows, strict=True):
        cells = [word.get(s, s[:colw]) if (s := statuses[m].get(tid)) else "" for m in models]
        lines.append(f"{label[:first]:<{first}}" + "".join(f" {c:>{colw}}" for c in cells))
    if heads is not models:
        lines += [f"  {h} = {m}" for h, m in zip(heads, models, strict=True)]
    return lines


def matrix_markdown(data: dict[str, Any], per_table: int = 8) -> list[str]:
    """Markdown verdict matrix (checks as rows, models as columns, ``per_table`` models per table),
    with numbered notes giving the message of every verdict that is not a pass."""
    models = list(data["models"])
    groups = matrix_groups(data)
    lines: list[str] = []
    notes: list[str] = []
    note_of: dict[tuple[str, str], int] = {}
    for chunk in _chunks(models, per_table):
        lines += ["| check | " + " | ".join(chunk) + " |", "|---|" + "---|" * len(chunk)]
        for g, tids in groups:
            lines.append(f"| **{g}** (protocol) | "
                         + " | ".join(_group_protocols(data["models"][n], tids, data) for n in chunk) + " |")
            if g == "npt" and any(outcome_classes(data["models"][n]) for n in chunk):
                lines.append("| outcome class (whole sweep) | "
                             + " | ".join(outcome_classes(data["models"][n]) for n in chunk) + " |")
            for tid in tids:
                cells = []
                for n in chunk:
                    chk = data["models"][n].get("checks", {}).get(tid)
                    if chk is None:
                        cells.append("")
                        continue
                    cell = _symbol(status_of(chk))
                    if status_of(chk) != "pass" and chk.get("message"):
                        if (n, tid) not in note_of:
                            notes.append(f"[{len(notes) + 1}] {n}, {tid}: {chk['message'].splitlines()[0]}")
                            note_of[(n, tid)] = len(notes)
                        cell += f" [{note_of[(n, tid)]}]"
                    cells.append(cell)
                lines.append(f"| {_short(tid)} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines + notes


def matrix_html(data: dict[str, Any], per_table: int = MATRIX_MODELS_PER_TABLE) -> tuple[str, list[str]]:
    """HTML verdict matrix (checks as rows, models as columns, ``per_table`` models per table) and
    the notes (message of every verdict that is not a pass) it refers to by number."""
    esc = html.escape
    models = list(data["models"])
    groups = matrix_groups(data)
    tables, notes = [], []
    note_of: dict[tuple[str, str], int] = {}
    for chunk in _chunks(models, per_table):
        head = "<tr><th class='check'>check</th>" + "".join(
            f"<th class='model' title='{esc(_versions(data['models'][n]), quote=True)}'>{_breakable(n)}</th>"
            for n in chunk) + "</tr>"
        body = []
        for g, tids in groups:
            body.append(f"<tr class='group'><th class='check'>{esc(g)}</th>" + "".join(
                f"<td class='proto'>{esc(_group_protocols(data['models'][n], tids, data))}</td>"
                for n in chunk) + "</tr>")
            if g == "npt" and any(outcome_classes(data["models"][n]) for n in chunk):
                body.append("<tr class='outcome-class'><th class='check'>outcome class (whole sweep)</th>" + "".join(
                    f"<td class='proto'>{esc(outcome_classes(data['models'][n]))}</td>" for n in chunk) + "</tr>")
            for tid in tids:
                cells = []
                for n in chunk:
                    chk = data["models"][n].get("checks", {}).get(tid)
                    if chk is None:
                        cells.append("<td class='none'></td>")
                        continue
                    st = status_of(chk)
                    ref = ""
                    if st != "pass" and chk.get("message"):
                        if (n, tid) not in note_of:
                            notes.append(f"<li id='note-{len(notes) + 1}'><b>{esc(n)}</b>, {esc(tid)} "
                                         f"({esc(protocol_label(chk, data))}): <pre>{esc(chk['message'])}</pre></li>")
                            note_of[(n, tid)] = len(notes)
                        ref = f" <a href='#note-{note_of[(n, tid)]}'><sup>{note_of[(n, tid)]}</sup></a>"
                    cells.append(f"<td class='{_status_class(st)}' title='{esc(chk.get('message', ''), quote=True)}'>"
                                 f"{esc(_symbol(st))}{ref}</td>")
                body.append(f"<tr class='check-row'><th class='check' title='{esc(tid, quote=True)}'>"
                            f"{esc(_short(tid))}</th>" + "".join(cells) + "</tr>")
        tables.append(f"<table class='verdicts'>{head}{''.join(body)}</table>")
    return "".join(tables), notes


# --- comparison --------------------------------------------------------------------------------

STATUS_RANK = {"pass": 0, "skip": 1, "inconclusive": 1.5, "fail": 2, "error": 3}


def compare(new: dict[str, Any], old: dict[str, Any]) -> list[dict[str, Any]]:
    """Changes from ``old`` to ``new``: verdicts that changed, quantities that moved.

    A quantity moved when |diff| > max(threshold, 2 x combined standard error) (thresholds in
    ``reference_data/pto.toml [regression]``).  Each change has ``kind`` ("verdict" or
    ``quantity``), ``model``, ``what``, ``old``, ``new`` and ``worse`` (a verdict that got worse;
    a status this version does not know ranks between skip and fail).
    """
    changes = []
    for name, m in new.get("models", {}).items():
        o = old.get("models", {}).get(name)
        if o is None:
            changes.append({"kind": "model", "model": name, "what": "new model", "old": None, "new": None,
                            "worse": False})
            continue
        for tid, chk in m.get("checks", {}).items():
            prev = o.get("checks", {}).get(tid)
            if prev and status_of(prev) != status_of(chk):
                changes.append({"kind": "verdict", "model": name, "what": tid, "old": status_of(prev),
                                "new": status_of(chk),
                                "worse": STATUS_RANK.get(status_of(chk), 1.5) > STATUS_RANK.get(status_of(prev), 1.5)})
        qn, qo = comparable_quantities(m), comparable_quantities(o)
        for k in sorted(set(qn) & set(qo)):
            (vn, en), (vo, eo) = qn[k], qo[k]
            if not (is_finite_number(vn) and is_finite_number(vo)):
                if vn != vo:
                    changes.append({"kind": "quantity", "model": name, "what": k, "old": vo, "new": vn,
                                    "limit": math.nan, "worse": False})
                continue
            limit = movement_limit(k, en, eo)
            if abs(vn - vo) > limit:
                changes.append({"kind": "quantity", "model": name, "what": k, "old": vo, "new": vn,
                                "limit": limit, "worse": False})
    return changes


def _change_text(c: dict[str, Any]) -> str:
    if c["kind"] == "verdict":
        return f"{c['model']}: {c['what']} {c['old']} -> {c['new']}" + (" (WORSE)" if c["worse"] else "")
    if c["kind"] == "quantity":
        if not (is_finite_number(c["old"]) and is_finite_number(c["new"])):
            return f"{c['model']}: {c['what']} {c['old']!r} -> {c['new']!r} (not a finite number)"
        return f"{c['model']}: {c['what']} moved {c['old']:.4g} -> {c['new']:.4g} (limit {c['limit']:.3g})"
    return f"{c['model']}: {c['what']}"


# --- pages -------------------------------------------------------------------------------------

def _protocol_summary(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, description) of every protocol that produced a check or quantity of ``data``."""
    used: dict[str, None] = {}
    for m in data["models"].values():
        for chk in m.get("checks", {}).values():
            used.setdefault(protocol_label(chk, data), None)
        for qs in m.get("quantities", {}).values():
            for q in qs.values():
                if isinstance(q, dict):
                    used.setdefault(protocol_label(q, data), None)
    return [(lab, protocol_text(lab, data, md=True).removeprefix(f"protocol {lab}").strip(" ()") or "as named")
            for lab in used]


def _model_protocols(entry: dict[str, Any], data: dict[str, Any]) -> str:
    """``static, phonon: paper; npt, nvt: smoke`` for one model."""
    by: dict[str, list[str]] = {}
    for g, tids in matrix_groups({"models": {"m": entry}}):
        by.setdefault(_group_protocols(entry, tids, data), []).append(g)
    return "; ".join(f"{', '.join(gs)}: protocol {lab}" for lab, gs in by.items()) or "no checks recorded"


def write_markdown(data: dict[str, Any], figs: list[Figure], changes: list[dict[str, Any]] | None,
                   path: Path) -> None:
    """Markdown summary: protocols, verdict matrix with numbered notes, changes, models, figures."""
    lines = ["# pto-checks report", "",
             f"Harness {data['harness']['version']}, last run {data['harness']['created']}; {_engine_text(data)}; "
             f"{len(data.get('runs', []))} run(s) accumulated in these results.", ""]
    if gate_text(data):
        lines += [f"**{gate_text(data)}.**", ""]
    lines += ["## Protocols", ""]
    lines += [f"- **{lab}**: {text}" for lab, text in _protocol_summary(data)] + [""]
    if changes is not None:
        lines += ["## Changes since the previous results", ""]
        lines += [f"- {_change_text(c)}" for c in changes] or ["- none"]
        lines.append("")
    lines += ["## Verdicts", "", *matrix_markdown(data), "", "## The study's models", "",
              "The study's finding per model (arXiv:2503.08207) and, where the model ran here, the harness's "
              "NPT outcome class beside it.", "", *study_table(data), "", "## Models", ""]
    lines += [f"- **{name}** ({_model_protocols(m, data)}): {_versions(m)}" for name, m in data["models"].items()]
    lines += [f"- **{u['model']}**: not run: {u['reason']}" for u in data.get("unavailable", [])]
    lines += ["", "## Figures", ""]
    for section in ["", *data["models"]]:
        sel = [f for f in figs if f.section == section]
        if not sel:
            continue
        lines += [f"### {section or 'All models'}", ""]
        for f in sel:
            rel = f.png.relative_to(path.parent).as_posix()
            svg = f" ([SVG]({f.svg.relative_to(path.parent).as_posix()}))" if f.svg else ""
            lines += [f"![{f.name}]({rel})", "", f"*{f.caption}*{svg}", ""]
    write_text(path, "\n".join(lines) + "\n")


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em 2em;max-width:1336px;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd} h3{font-size:1.05em}
table.verdicts{border-collapse:collapse;font-size:12.5px;margin:0 0 1em 0;table-layout:auto}
table.verdicts td,table.verdicts th{border:1px solid #ccc;padding:3px 5px;text-align:center}
table.verdicts th.check{text-align:left;font-weight:500;min-width:12em;max-width:19em;white-space:normal}
table.verdicts th.model{max-width:8.5em;overflow-wrap:break-word;font-weight:600;vertical-align:bottom}
tr.group th.check{font-weight:700;background:#f3f3f3} tr.group td.proto{background:#f3f3f3;font-size:11px;color:#555}
.st-pass{background:#dcefd9} .st-fail{background:#f6cdbd} .st-inconclusive{background:#fbe8a6}
.st-skip{background:#eeeeee;color:#555} .st-error{background:#e3b4d6;font-weight:600}
td{white-space:nowrap} td a{text-decoration:none}
td.st-other{background:#fff;border-style:dashed;color:#444;white-space:normal;overflow-wrap:anywhere;max-width:8em}
span.st-other{border-style:dashed}
.legend span{display:inline-block;padding:1px 6px;margin-right:6px;border:1px solid #ccc;font-size:12px}
ol.notes pre{white-space:pre-wrap;font-size:11.5px;margin:2px 0 8px 0}
li.worse{color:#b00;font-weight:bold}
figure{display:inline-block;vertical-align:top;margin:8px 12px 16px 0;width:640px}
figure img{width:640px;height:auto;border:1px solid #eee}
figcaption{font-size:12.5px;line-height:1.35;color:#333}
figcaption a{font-size:11px}
"""


def write_html(data: dict[str, Any], figs: list[Figure], changes: list[dict[str, Any]] | None,
               path: Path) -> None:
    """Self-contained HTML page (figures embedded as SVG data URIs; opens with no server; the SVG
    and 300 dpi PNG files are linked next to each caption)."""
    esc = html.escape
    matrix, notes = matrix_html(data)
    change_html = ""
    if changes is not None:
        items = "".join(f'<li class="{"worse" if c["worse"] else ""}">{esc(_change_text(c))}</li>'
                        for c in changes) or "<li>none</li>"
        change_html = f"<h2>Changes since the previous results</h2><ul id='changes'>{items}</ul>"
    protos = "".join(f"<li><b>{esc(lab)}</b>: {esc(text)}</li>" for lab, text in _protocol_summary(data))
    legend = "".join(f"<span class='{_status_class(s)}'>{esc(_symbol(s))}</span>" for s in KNOWN_STATUSES)
    legend += "<span class='st-other'>other status: as written</span>"

    def fig_html(f: Figure) -> str:
        links = [f"<a href='{esc(f.png.relative_to(path.parent).as_posix())}'>PNG 300 dpi</a>"]
        if f.svg:
            links.append(f"<a href='{esc(f.svg.relative_to(path.parent).as_posix())}'>SVG</a>")
        # SVG embedded (sharp at any zoom, a quarter of the PNG's size); PNG where there is no SVG
        src, mime = (f.svg, "image/svg+xml") if f.svg else (f.png, "image/png")
        return (f'<figure id="fig-{esc(f.name)}"><img alt="{esc(f.caption[:120])}" '
                f'src="data:{mime};base64,{base64.b64encode(src.read_bytes()).decode()}">'
                f"<figcaption>{esc(f.caption)} {' · '.join(links)}</figcaption></figure>")

    sections = []
    for section in ["", *data["models"]]:
        sel = [f for f in figs if f.section == section]
        if not sel:
            continue
        if section:
            title = f"{esc(section)} <small>({esc(_model_protocols(data['models'][section], data))})</small>"
        else:
            title = "All models"
        sections.append(f"<section class='figures'><h3>{title}</h3>{''.join(fig_html(f) for f in sel)}</section>")
    models = "".join(f"<li><b>{esc(n)}</b> ({esc(_model_protocols(m, data))}): {esc(_versions(m))}</li>"
                     for n, m in data["models"].items())
    models += "".join(f"<li class='unavailable'><b>{esc(u['model'])}</b>: not run: {esc(u['reason'])}</li>"
                      for u in data.get("unavailable", []))
    opened = " open" if len(notes) <= 12 else ""
    notes_html = (f"<details{opened}><summary>Messages of the {len(notes)} verdicts that did not pass</summary>"
                  f"<ol class='notes'>{''.join(notes)}</ol></details>" if notes else "")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pto-checks report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style></head>
<body>
<h1>pto-checks report</h1>
<p>Harness {esc(str(data['harness']['version']))}, last run {esc(str(data['harness']['created']))};
{esc(_engine_text(data))}; {len(data.get('runs', []))} run(s) accumulated in these results.</p>
{f'<p class="gate"><b>{esc(gate_text(data) or "")}.</b></p>' if gate_text(data) else ''}
<h2>Protocols</h2><ul id="protocols">{protos}</ul>
{change_html}
<h2>Verdicts</h2>
<p class="legend">{legend} Each group row names the protocol of its checks; a number links to the verdict's
message (also shown on hover).</p>
<div id="verdicts">{matrix}</div>
{notes_html}
<h2>Models</h2><ul>{models}</ul>
<h2>Figures</h2>{''.join(sections)}
<script>
window.addEventListener('load', function () {{
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  var right = 0;
  document.querySelectorAll('#verdicts table').forEach(function (t) {{
    right = Math.max(right, t.getBoundingClientRect().right); }});
  document.body.setAttribute('data-figures', imgs.length);
  document.body.setAttribute('data-figures-rendered', ok);
  document.body.setAttribute('data-matrix-right', Math.ceil(right));
  document.body.setAttribute('data-page-width', document.documentElement.scrollWidth);
}});
</script>
</body></html>
"""
    write_text(path, page)


#: in the report folder: the files of ``figures/`` that pto-checks wrote (anything else there is kept)
FIGURES_MANIFEST = ".pto-checks-figures"


def build_report(data: dict[str, Any], out: str | Path, previous: dict[str, Any] | None = None) -> Path:
    """Write ``out/report.html``, ``out/report.md`` and ``out/figures`` (rebuilt whole from
    ``data`` into a fresh folder that then replaces the old one: no stale figure of pto-checks
    survives; a file pto-checks did not write there is moved into the new folder, never deleted);
    return the HTML path.  ``out`` must be a report folder (:func:`~pto_checks.safe_files.claim_report_dir`:
    new, empty or marked); every file is written atomically, never through a link."""
    out = claim_report_dir(out)
    fresh = Path(tempfile.mkdtemp(prefix=".figures-new-", dir=out))
    fresh.chmod(shared_mode(executable=True))  # mkdtemp makes it private; the report folder is meant to be shared
    try:
        figs = make_figures(data, fresh)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    final = out / "figures"
    manifest = out / FIGURES_MANIFEST
    ours = _manifest(manifest)
    new = sorted(p.name for p in fresh.iterdir())
    old = None
    if final.is_symlink():
        final.unlink()  # a link in our folder: replaced, its target untouched
    elif final.exists():
        _keep_foreign_files(final, fresh, ours)
        old = Path(tempfile.mkdtemp(prefix=".figures-old-", dir=out))
        os.replace(final, old / "figures")
    write_text(manifest, "".join(f"{n}\n" for n in sorted(ours | set(new))))  # an interruption never orphans ours
    os.replace(fresh, final)
    write_text(manifest, "".join(f"{n}\n" for n in new))
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    for pattern in (".figures-new-*", ".figures-old-*"):  # left by interrupted runs
        prune(out, pattern, KEEP_NEWEST)
    for f in figs:
        f.png = final / f.png.name
        f.svg = final / f.svg.name if f.svg else None
    changes = compare(data, previous) if previous is not None else None
    write_markdown(data, figs, changes, out / "report.md")
    write_html(data, figs, changes, out / "report.html")
    return out / "report.html"


def _manifest(path: Path) -> set[str]:
    """The names of the figures pto-checks wrote into ``figures/`` (its manifest)."""
    if path.is_file() and not path.is_symlink():
        return {n for n in path.read_text().splitlines() if n}
    return set()


def _keep_foreign_files(old: Path, fresh: Path, ours: set[str]) -> None:
    """Move every entry of ``old`` (the previous ``figures/``) that is not one of ``ours`` (the
    manifest) into ``fresh``: files pto-checks did not write are never deleted."""
    for p in old.iterdir():
        if p.name in ours:
            continue
        dest = fresh / p.name
        if dest.exists() or dest.is_symlink():
            dest = fresh / f"{p.stem}.kept{p.suffix}"
        os.replace(p, dest)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
