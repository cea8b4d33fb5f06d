"""Verdicts from an MD run made elsewhere (``pto-checks analyze``): LAMMPS, GPUMD, a cluster job.

Input, per file:

* an extended-XYZ trajectory (``.xyz``/``.extxyz``) of a PbTiO3 supercell of 5 L^3 atoms with the
  cell, the positions and the temperature of every frame (``info`` keys ``temperature_K``,
  ``temperature`` or ``T``; the time from ``time_ps`` or ``time``, else ``--frame-interval-ps``).
  Every frame is measured as the harness measures its own MD (:mod:`pto_checks.analysis`:
  lattice, Born-charge polarization, Lindemann ratio) and the run is summarised by
  :func:`pto_checks.analysis.summarize_run`, so its phase is the one the checks would decide;
* a CSV with a header row ``time_ps,<quantity>,...`` (any column order; a ``step`` column is
  ignored, so the harness's own ``samples.csv`` reads as is; quantities named as in the harness's
  ``samples.csv``: ``a``, ``b``, ``c``, ``Px``, ``Py``, ``Pz``, ``lindemann``, ``epot_eV``, or
  derived ones such as ``c_over_a``).  With the lattice and polarization columns of
  ``samples.csv`` the file goes through the same path as a trajectory; otherwise each column
  is a bare quantity.

Per file and quantity: the mean, the interval (``low``, ``high``) at its ``level``, ``n_eff``,
the equilibrated start and the outcome against each threshold (the checks' own thresholds for
the quantities they decide, plus ``--threshold NAME=VALUE``), decided by
:func:`pto_checks.decisions.decide_series`, the rule every check uses.  A file that cannot be
read is one line naming the fix (:class:`AnalyzeError`, exit 4).
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: the columns of ``samples.csv`` a file needs to be summarised as a whole run (phase included)
SAMPLE_COLUMNS = ("a", "b", "c", "Px", "Py", "Pz")


class AnalyzeError(ValueError):
    """A file ``pto-checks analyze`` cannot read (one line: the file, what is wrong, the fix)."""


@dataclass
class ThresholdOutcome:
    """One quantity against one threshold: ``side`` above / below / undecided (and why)."""

    name: str
    threshold: float
    side: str
    reason: str = ""


@dataclass
class QuantityResult:
    """Statistics of one quantity over its production window, in ``unit``."""

    name: str
    unit: str
    mean: float
    low: float
    high: float
    level: float
    sem: float
    dof: float
    n_eff: float
    equilibrated_start: int
    equilibrated_start_ps: float
    outcomes: list[ThresholdOutcome] = field(default_factory=list)


@dataclass
class FileResult:
    """One file's result: ``kind`` (``trajectory``, ``samples``, ``quantities``), ``frames``,
    ``ensemble`` and ``phase`` (a whole run only), ``quantities``."""

    path: str
    kind: str
    frames: int
    quantities: list[QuantityResult]
    ensemble: str | None = None
    phase: str | None = None
    phase_text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_thresholds(items: list[str]) -> dict[str, list[float]]:
    """``NAME=VALUE`` items -> {name: [values]} (AnalyzeError on a malformed one)."""
    out: dict[str, list[float]] = {}
    for it in items:
        name, sep, value = it.partition("=")
        try:
            v = float(value)
        except ValueError:
            v = math.nan
        if not sep or not name or not math.isfinite(v):
            raise AnalyzeError(f"--threshold {it!r}: expected NAME=VALUE with a number, e.g. c_over_a=1.01")
        out.setdefault(name.strip(), []).append(v)
    return out


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise AnalyzeError(f"{path}: cannot read ({exc.__class__.__name__}: {exc}); give a readable CSV") from exc
    if not rows or "time_ps" not in [h.strip() for h in rows[0]] or len(rows[0]) < 2:
        raise AnalyzeError(f"{path}: not a CSV with a header row 'time_ps,<quantity>,...'; write one "
                           "(quantities named as in samples.csv, e.g. c_over_a, Pz)")
    head = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if r]
    try:
        data = np.array([[float(x) for x in r] for r in body], dtype=float)
    except ValueError as exc:
        raise AnalyzeError(f"{path}: a value is not a number ({exc}); every cell below the header must be one") \
            from exc
    if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] != len(head):
        raise AnalyzeError(f"{path}: needs at least 2 rows of {len(head)} numbers under the header")
    # the harness's own samples.csv starts with the step number: not a quantity
    return {h: data[:, i] for i, h in enumerate(head) if h != "step"}


def _frame_samples(path: Path, frame_interval_ps: float | None) -> tuple[list[dict[str, Any]], int, bool]:
    """(samples as the harness stores them, supercell L, whether the cell changes)."""
    from ase.io import read

    from pto_checks import analysis

    try:
        frames = read(str(path), index=":", format="extxyz")
    except Exception as exc:  # noqa: BLE001 - any parser failure is a user's file problem
        raise AnalyzeError(f"{path}: cannot read as extended XYZ ({exc.__class__.__name__}: {exc}); "
                           "give an extxyz trajectory with a Lattice and positions per frame") from exc
    if not frames:
        raise AnalyzeError(f"{path}: no frames; give an extxyz trajectory")
    n = len(frames[0])
    cells = round((n / 5) ** (1 / 3))
    if 5 * cells**3 != n:
        raise AnalyzeError(f"{path}: {n} atoms is not a PbTiO3 supercell of 5 L^3 atoms (L x L x L cells)")
    reps = (cells, cells, cells)
    samples = []
    for i, at in enumerate(frames):
        if not at.cell.rank == 3:
            raise AnalyzeError(f"{path}: frame {i} has no cell; write the Lattice of every frame")
        info = at.info
        temp = next((info[k] for k in ("temperature_K", "temperature", "T") if k in info), None)
        if temp is None:
            raise AnalyzeError(f"{path}: frame {i} has no temperature; write temperature_K=<K> in every "
                               "frame's comment line")
        if "time_ps" in info or "time" in info:
            t = float(info.get("time_ps", info.get("time")))
        elif frame_interval_ps is not None:
            t = i * frame_interval_ps
        else:
            t = float(i)
        cell = at.cell.array
        assign = analysis.site_assignment(at.positions, cell, reps, at.numbers)
        lens = analysis.unit_cell_lengths(cell, reps)
        pol = analysis.polarization(at.positions, cell, reps, assign)
        om = analysis.order_metrics(at.positions, cell, reps, assign)
        s = {"time_ps": t, "T_K": float(temp), "a": lens[0], "b": lens[1], "c": lens[2],
             "Px": float(pol["P"][0]), "Py": float(pol["P"][1]), "Pz": float(pol["P"][2]),
             "P_local_abs": pol["local_abs"], **om}
        energy = info.get("energy", info.get("epot_eV"))
        if energy is not None:
            s["epot_eV"] = float(energy)
        samples.append(s)
    moves = not all(np.allclose(f.cell.array, frames[0].cell.array) for f in frames)
    return samples, cells, moves


def _check_thresholds(row: dict[str, Any], ensemble: str, cells: int | None) -> dict[str, list[tuple[str, float]]]:
    """The thresholds the checks decide each quantity against: {series: [(label, value)]}."""
    from pto_checks import analysis
    from pto_checks.reference import tolerance

    ph, melt = tolerance("phase"), tolerance("melting")
    p_thr = analysis.polar_threshold(ph, row.get("born_convention"))
    out: dict[str, list[tuple[str, float]]] = {
        "lindemann": [("max_lindemann", melt["max_lindemann"])], "order": [("min_order", melt["min_order"])]}
    if ensemble == "npt":
        out["c_over_a"] = [("1 + tetragonal_min", 1.0 + ph["tetragonal_min"]),
                           ("supertetragonal_min", ph["supertetragonal_min"])]
        if cells is not None and cells**3 >= ph["min_cells_polar_order"]:
            out["P_alignment"] = [("polar order", analysis.polar_order_threshold(cells**3, ph["min_polar_order"]))]
            out["P_frame_abs"] = [("polar_min_c_per_m2", p_thr)]
            out["P_binder"] = [("min_binder", ph["min_binder"])]
    else:
        out["Pz_frame_abs"] = [("polar_min_c_per_m2", p_thr)]
        out["Pz_binder"] = [("min_binder", ph["min_binder"])]
    return out


def _quantity(st: Any, thresholds: list[tuple[str, float]], settings: Any) -> QuantityResult:
    from pto_checks.decisions import decide_series

    outs = []
    iv = None
    for label, value in thresholds:
        d = decide_series(st, value, settings=settings)
        iv = d.interval
        outs.append(ThresholdOutcome(label, value, d.side.value, d.reason))
    if iv is None:
        iv = decide_series(st, 0.0, settings=settings).interval
    return QuantityResult(st.name, st.unit, st.mean, iv.low, iv.high, iv.level, st.sem, st.dof, st.n_eff, st.t0,
                          st.t0 * st.sample_interval_ps if math.isfinite(st.sample_interval_ps) else math.nan,
                          outs)


def analyze_file(path: str | Path, thresholds: dict[str, list[float]] | None = None, ensemble: str | None = None,
                 production_fraction: float = 0.5, frame_interval_ps: float | None = None,
                 supercell: int | None = None) -> FileResult:
    """One file's :class:`FileResult` (see the module docstring); AnalyzeError when unreadable.
    ``supercell``: L of an L x L x L CSV run (a trajectory has its own), for the per-frame rules."""
    from pto_checks import analysis, statistics
    from pto_checks.decisions import statistics_settings
    from pto_checks.phase import decide_phase
    from pto_checks.statistics import SeriesStats

    path = Path(path)
    thresholds = thresholds or {}
    settings = statistics_settings()
    if not path.is_file():
        raise AnalyzeError(f"{path}: no such file; give the path of an extxyz trajectory or a CSV")
    is_csv = path.suffix.lower() == ".csv"
    cells: int | None = supercell
    if is_csv:
        cols = _read_csv(path)
        whole = all(k in cols for k in SAMPLE_COLUMNS)
        if whole:
            samples = [{k: float(v[i]) for k, v in cols.items()} for i in range(len(cols["time_ps"]))]
            moves = not (np.allclose(cols["a"], cols["a"][0]) and np.allclose(cols["c"], cols["c"][0]))
    else:
        samples, cells, moves = _frame_samples(path, frame_interval_ps)
        whole = True
    if whole:
        ens = ensemble or ("npt" if moves else "nvt")
        for s in samples:  # columns a bare-quantity CSV may lack: no melting evidence either way
            s.setdefault("T_K", math.nan)
        row = analysis.summarize_run(samples, None, float(np.nanmean([s["T_K"] for s in samples]))
                                     if any(math.isfinite(s["T_K"]) for s in samples) else math.nan,
                                     production_fraction)
        if cells is not None:
            row["task"] = {"supercell": cells}
        series = {k: SeriesStats(**v) for k, v in row["stats"]["series"].items()}
        limits = _check_thresholds(row, ens, cells)
        for name, values in thresholds.items():
            if name not in series:
                raise AnalyzeError(f"{path}: --threshold {name}: no such quantity; known: {', '.join(sorted(series))}")
            limits.setdefault(name, []).extend((f"{name}={v:g}", v) for v in values)
        shown = [k for k in ("c_over_a", "a", "c", "Pz", "P_abs", "P_frame_abs", "Pz_frame_abs", "P_alignment",
                             "P_binder", "Pz_binder", "lindemann", "order", "T_measured") if k in series]
        shown += [k for k in limits if k not in shown]
        quantities = [_quantity(series[k], limits.get(k, []), settings) for k in shown]
        phase_text = None
        phase = None
        if math.isfinite(row["T_K"]):
            d = decide_phase(row, ens, settings)
            phase, phase_text = d.phase.value, d.text
        return FileResult(str(path), "trajectory" if not is_csv else "samples", len(samples), quantities, ens,
                          phase, phase_text)
    times = cols.pop("time_ps")
    dt = float(np.median(np.diff(times)))
    units = {k: analysis.SERIES_UNITS.get(k, "") for k in cols}
    rs = statistics.run_statistics(cols, units, dt, analysis.EQUILIBRATION_FROM, 1.0 - production_fraction)
    for name in thresholds:
        if name not in rs.series:
            raise AnalyzeError(f"{path}: --threshold {name}: no such column; columns: {', '.join(cols)}")
    quantities = [_quantity(rs[k], [(f"{k}={v:g}", v) for v in thresholds.get(k, [])], settings) for k in cols]
    return FileResult(str(path), "quantities", len(times), quantities)


def format_result(res: FileResult) -> str:
    """Human-readable lines of one file's result."""
    out = [f"{res.path}: {res.kind}, {res.frames} frames" + (f", {res.ensemble.upper()}" if res.ensemble else "")]
    if res.phase_text:
        out.append(f"  phase (the checks' rule): {res.phase_text}")
    for q in res.quantities:
        u = f" {q.unit}" if q.unit else ""
        head = (f"  {q.name} = {q.mean:.5g}{u}, {100 * q.level:.4g}% interval [{q.low:.5g}, {q.high:.5g}], "
                f"n_eff {q.n_eff:.1f}, equilibrated from sample {q.equilibrated_start}")
        out.append(head)
        for o in q.outcomes:
            out.append(f"      vs {o.name} ({o.threshold:g}): {o.side}" + (f" ({o.reason})" if o.reason else ""))
    return "\n".join(out)
