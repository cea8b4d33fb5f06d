"""pytest fixture of the accuracy tier (registered by importing it into :mod:`pto_checks.pytest_plugin`).

``accuracy_tier`` evaluates the session's model on the AIMD frames (cached), records the numbers in
results.json (``quantities.accuracy``) and, with ``--report DIR``, writes the figures to
``DIR/accuracy/<model>/``. Without the data and without network it skips with one line naming the fix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pto_checks.accuracy import data as _data
from pto_checks.accuracy.metrics import growth
from pto_checks.accuracy.stage import TemperatureResult, evaluate
from pto_checks.plugin.session import xdist_worker


@dataclass
class AccuracyTier:
    """The accuracy tier of one model: per-temperature results, subsample and provenance."""

    model_name: str
    functional: str
    data_functional: str
    every: int
    offset: int
    reduced: bool
    results: list[TemperatureResult]
    growth: dict[str, dict[str, Any]]
    data_root: str

    @property
    def subsample(self) -> str:
        n = ", ".join(f"{r.frames.temperature_K} K: {len(r.frames)}/{r.frames.n_total}" for r in self.results)
        what = "all frames" if self.every == 1 else f"every {self.every}-th frame from frame {self.offset % self.every}"
        return f"{what} ({n})"


def _writer(config: pytest.Config):
    capman = config.pluginmanager.getplugin("capturemanager")
    tr = config.pluginmanager.getplugin("terminalreporter")
    quiet = xdist_worker(config) is not None or config.getoption("verbose") < 0

    def write(line: str) -> None:
        if quiet or capman is None or tr is None:
            return
        with capman.global_and_fixture_disabled():
            tr.write_line(line)

    return write


@pytest.fixture(scope="session")
def accuracy_tier(request: pytest.FixtureRequest, model, pto_protocol, pto_cache, pto_results) -> AccuracyTier:
    """Errors of ``model`` against the PBEsol AIMD frames of PbTiO3 at 300, 450 and 900 K (cached)."""
    proto = pto_protocol.accuracy
    try:
        root = _data.ensure(pto_cache.root / "data", proto.temperatures_K)
    except _data.DataUnavailable as exc:
        pytest.skip(str(exc))
    write = _writer(request.config)
    results = []
    for t in proto.temperatures_K:
        last = [time.monotonic()]

        def progress(i: int, n: int, t=t, last=last) -> None:
            if time.monotonic() - last[0] > 10 or i == n:
                last[0] = time.monotonic()
                write(f"accuracy {model.name}: {t} K frame {i}/{n}")

        results.append(evaluate(model, root, t, pto_cache, proto.every, proto.offset, progress))
    rows = [r.errors for r in results]
    grow = {k: growth(rows, k) for k in ("force_rmse_eV_A", "force_rmse_over_dft_rms", "energy_rmse_meV_atom",
                                         "stress_rmse_GPa")}
    tier = AccuracyTier(model.name, model.spec.functional, _data.FUNCTIONAL, proto.every, proto.offset,
                        proto.every > 1, results, grow, str(root))
    res = pto_results
    note = (f"model trained on {model.spec.functional} data, frames {_data.FUNCTIONAL} AIMD"
            + ("" if model.spec.functional.lower() == "pbesol" else
               f": errors include the {model.spec.functional}-{_data.FUNCTIONAL} functional gap"))
    for r in results:
        res.quantity(model.name, "accuracy", f"T{r.frames.temperature_K}K", r.errors.to_dict(),
                     "eV/A (forces), meV/atom (relative energies), GPa (stress)", functional_note=note)
    res.quantity(model.name, "accuracy", "growth_with_temperature", grow, "per key's unit; slope per 100 K")
    res.quantity(model.name, "accuracy", "subsample", {"every": proto.every, "offset": proto.offset,
                                                       "text": tier.subsample}, "")
    res.quantity(model.name, "accuracy", "data", {"source": f"{_data.REPOSITORY}@{_data.COMMIT}",
                                                  "functional": _data.FUNCTIONAL,
                                                  "checksum": _data.checksum(), "root": str(root)}, "")
    report = request.config.getoption("--report")
    if report:
        from pto_checks.accuracy import figures
        from pto_checks.safe_files import safe_name

        out = Path(report) / "accuracy" / safe_name(model.name)
        out.mkdir(parents=True, exist_ok=True)
        title = f"{model.name} (trained on {model.spec.functional}) vs {_data.FUNCTIONAL} AIMD; {tier.subsample}"
        parity = figures.plot_parity(results, out / "parity.png", title)
        from pto_checks.reference import tolerance

        limits = {"force_ratio": tolerance("accuracy_forces")["value"],
                  "energy_meV_atom": tolerance("accuracy_energy")["value"],
                  "stress_GPa": tolerance("accuracy_stress")["value"]}
        vs_t = figures.plot_errors_vs_temperature([r.to_dict() for r in rows], out / "errors_vs_T.png", title,
                                                  limits)
        res.quantity(model.name, "accuracy", "files", {"parity": str(parity), "errors_vs_T": str(vs_t)}, "")
    return tier
