"""Figures of the accuracy tier: force parity per species and errors vs temperature (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_COLORS = {300: "tab:blue", 450: "tab:orange", 900: "tab:red"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path, title: str) -> Path:
    """Title, tight layout, write ``path`` (PNG, 100 dpi), close the figure."""
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    from pto_checks.safe_files import write_with

    write_with(path, lambda tmp: fig.savefig(tmp, dpi=100))  # atomic, never through a link
    plt.close(fig)
    return Path(path)


def plot_parity(results: list[Any], path: str | Path, title: str = "", max_points: int = 20000) -> Path:
    """Model vs DFT force components (eV/A), one panel per species, colour = temperature.

    ``results``: :class:`~pto_checks.accuracy.stage.TemperatureResult` per temperature.
    """
    plt = _plt()
    species = list(dict.fromkeys(results[0].frames.symbols))
    fig, axes = plt.subplots(1, len(species), figsize=(4.2 * len(species), 4.2))
    rng = np.random.default_rng(0)
    for ax, s in zip(np.atleast_1d(axes), species, strict=True):
        lim = 0.0
        for r in results:
            mask = np.array(r.frames.symbols) == s
            x = r.frames.forces[:, mask].ravel()
            y = r.predictions.forces[:, mask].ravel()
            if len(x) > max_points:
                pick = rng.choice(len(x), max_points, replace=False)
                x, y = x[pick], y[pick]
            lim = max(lim, float(np.abs(x).max()), float(np.abs(y).max()))
            e = r.errors
            ax.scatter(x, y, s=2, alpha=0.3, color=_COLORS.get(r.frames.temperature_K),
                       label=f"{r.frames.temperature_K} K (RMSE {e.force_rmse_species_eV_A[s]:.3f})")
        ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.8)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(f"{s}")
        ax.set_xlabel("DFT force component (eV/Å)")
        ax.set_ylabel("model force component (eV/Å)")
        ax.legend(fontsize=7, markerscale=4, loc="upper left")
    return _save(plt, fig, path, title)


def plot_errors_vs_temperature(rows: list[dict[str, Any]], path: str | Path, title: str = "",
                               limits: dict[str, float] | None = None) -> Path:
    """Force RMSE (and the DFT force scale), relative energy RMSE and stress RMSE vs temperature,
    with the verdicts' limits (``limits``: ``force_ratio``, ``energy_meV_atom``, ``stress_GPa``) dashed.

    ``rows``: :meth:`TemperatureErrors.to_dict` per temperature.
    """
    limits = limits or {}
    plt = _plt()
    rows = sorted(rows, key=lambda r: r["temperature_K"])
    t = [r["temperature_K"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    def panel(ax, key: str, label: str, second: str, second_label: str, unit: str, limit: float | None) -> None:
        """One metric with its standard error, a second curve dashed, and the verdict's limit."""
        ax.errorbar(t, [r[key] for r in rows], yerr=[r[key.replace("rmse", "rmse_se")] for r in rows],
                    marker="o", label=label)
        ax.plot(t, [r[second] for r in rows], "s--", label=second_label)
        if limit is not None:
            ax.axhline(limit, color="r", ls="--", label="limit")
        ax.set_ylabel(unit)

    panel(axes[0], "force_rmse_eV_A", "force RMSE", "force_mae_eV_A", "force MAE", "eV/Å", None)
    axes[0].plot(t, [r["dft_force_rms_eV_A"] for r in rows], "k:", marker="^", label="DFT force rms")
    if "force_ratio" in limits:
        axes[0].plot(t, [limits["force_ratio"] * r["dft_force_rms_eV_A"] for r in rows], "r--",
                     label=f"limit ({limits['force_ratio']} x DFT rms)")
    panel(axes[1], "energy_rmse_meV_atom", "relative energy RMSE", "energy_mae_meV_atom", "MAE", "meV/atom",
          limits.get("energy_meV_atom"))
    panel(axes[2], "stress_rmse_GPa", "stress RMSE", "stress_rmse_after_offset_GPa",
          "RMSE without mean pressure offset", "GPa", limits.get("stress_GPa"))
    for ax in axes:
        ax.set_xlabel("AIMD temperature (K)")
        ax.legend(fontsize=8)
    return _save(plt, fig, path, title)
