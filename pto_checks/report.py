"""Report figures (matplotlib, Agg).  Later stages add the HTML/Markdown report here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PHASE_MARKERS = {"tetragonal": "o", "cubic": "s", "supertetragonal": "^", "molten": "x", "unstable": "X"}


def plot_sweep(rows: list[dict[str, Any]], ensemble: str, path: str | Path, title: str = "") -> None:
    """NPT: a and c vs T with error bars and the phase marked; NVT: Pz and |P| vs T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    temps = [r["T_K"] for r in rows]
    if ensemble == "npt":
        for key, color in (("a", "tab:blue"), ("c", "tab:red")):
            ax.errorbar(temps, [r[key] for r in rows], yerr=[r.get(f"{key}_err") or 0 for r in rows],
                        color=color, label=key, capsize=3)
            for r in rows:
                ax.plot(r["T_K"], r[key], PHASE_MARKERS.get(r["phase"], "o"), color=color)
        ax.set_ylabel("Lattice parameter (Å)")
    else:
        ax.errorbar(temps, [r["Pz"] for r in rows], yerr=[r.get("Pz_err") or 0 for r in rows],
                    color="tab:green", label="Pz", capsize=3)
        ax.plot(temps, [r["P_abs"] for r in rows], "--", color="grey", label="|P|")
        ax.set_ylabel("Polarization (C/m²)")
    for r in rows:
        ax.annotate(r["phase"][:4], (r["T_K"], ax.get_ylim()[0]), fontsize=7, ha="center",
                    va="bottom", rotation=90)
    ax.set_xlabel("Temperature (K)")
    ax.legend()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
