"""Reports: figures (matplotlib, Agg), a self-contained HTML page and a Markdown summary, and the
comparison of two results files (nightly regressions, CI baselines).

Reads only results.json dicts (and the figure files they name), so a report can be rebuilt from
saved results without rerunning anything: ``pto-checks report RESULTS.json... -o DIR``.
"""

from __future__ import annotations

import base64
import html
import shutil
from pathlib import Path
from typing import Any

from pto_checks.results import comparable_quantities, finite_or_zero, movement_limit

PHASE_MARKERS = {"tetragonal": "o", "cubic": "s", "supertetragonal": "^", "molten": "x", "unstable": "X"}
STATUS_SYMBOL = {"pass": "✔ pass", "fail": "✘ fail", "inconclusive": "? inconclusive", "skip": "– skip",
                 "error": "⚠ error"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_sweep(rows: list[dict[str, Any]], ensemble: str, path: str | Path, title: str = "") -> None:
    """NPT: a and c vs T with error bars and the phase marked; NVT: Pz and |P| vs T."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    temps = [r["T_K"] for r in rows]
    if ensemble == "npt":
        for key, color in (("a", "tab:blue"), ("c", "tab:red")):
            ax.errorbar(temps, [r[key] for r in rows], yerr=[finite_or_zero(r.get(f"{key}_err")) for r in rows],
                        color=color, label=key, capsize=3)
            for r in rows:
                ax.plot(r["T_K"], r[key], PHASE_MARKERS.get(r["phase"], "o"), color=color, ms=7)
        ax.set_ylabel("Lattice parameter (Å)")
    else:
        ax.errorbar(temps, [abs(r["Pz"]) for r in rows], yerr=[finite_or_zero(r.get("Pz_err")) for r in rows],
                    color="tab:green", label="|Pz|", capsize=3)
        for r in rows:
            ax.plot(r["T_K"], abs(r["Pz"]), PHASE_MARKERS.get(r["phase"], "o"), color="tab:green", ms=7)
        ax.plot(temps, [r["P_abs"] for r in rows], "--", color="grey", label="|P|")
        ax.set_ylabel("Polarization (C/m²)")
    ymin = ax.get_ylim()[0]
    for r in rows:
        ax.annotate(r["phase"], (r["T_K"], ymin), fontsize=7, ha="center", va="bottom", rotation=90)
    ax.set_xlabel("Temperature (K)")
    ax.legend(title="o tetragonal, s cubic, ^ supertetragonal, x molten", title_fontsize=6, fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ground_states(data: dict[str, Any], path: Path) -> bool:
    """Ground-state a vs c/a per model against LDA, PBE, PBEsol and experiment."""
    from pto_checks.reference import load_reference

    pts = [(name, m["quantities"]["ground_state"]) for name, m in data["models"].items()
           if "ground_state" in m.get("quantities", {})]
    if not pts:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key, ref in load_reference()["references"].items():
        if "a" in ref and "c_over_a" in ref:
            ax.plot(ref["a"], ref["c_over_a"], "*", ms=14, color="k" if key == "experiment" else "grey")
            ax.annotate(key.upper() if key != "experiment" else "Exp.", (ref["a"], ref["c_over_a"]),
                        textcoords="offset points", xytext=(6, 4), fontsize=8)
    for name, g in pts:
        ax.plot(g["a"]["value"], g["c_over_a"]["value"], "o", ms=8)
        ax.annotate(name, (g["a"]["value"], g["c_over_a"]["value"]), textcoords="offset points",
                    xytext=(6, -10), fontsize=8)
    ax.set_xlabel("a (Å)")
    ax.set_ylabel("c/a")
    ax.set_title("Relaxed P4mm PbTiO3 (0 K)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _engine_text(data: dict[str, Any]) -> str:
    """'MD engine ase' / 'MD engines ase, batched' from the sweeps recorded, or 'no MD'."""
    engines = sorted({q.get("value", {}).get("engine", "ase")
                      for m in data.get("models", {}).values()
                      for q in m.get("quantities", {}).get("md", {}).values() if isinstance(q, dict)})
    if not engines:
        return "no MD sweep recorded"
    return f"MD engine{'s' if len(engines) > 1 else ''} {', '.join(engines)}"


def plot_speed(data: dict[str, Any], path: Path) -> bool:
    """MD steps per second vs number of atoms, per model (from the benchmark section)."""
    series = {name: m["quantities"]["benchmark"]["md_speed"]["value"] for name, m in data["models"].items()
              if "md_speed" in m.get("quantities", {}).get("benchmark", {})}
    if not series:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, rows in series.items():
        for engine, style in (("ase", "o-"), ("batched", "s--")):
            sel = sorted((r for r in rows if r.get("engine", "ase") == engine), key=lambda r: r["n_atoms"])
            if sel:  # replica-steps/s for the batched engine (all its replicas' steps count)
                ax.loglog([r["n_atoms"] for r in sel], [r.get("replica_steps_per_s", r["steps_per_s"]) for r in sel],
                          style, label=f"{name} ({engine})")
    ax.set_xlabel("Number of atoms (per replica)")
    ax.set_ylabel("MD steps per second (batched: replica-steps)")
    ax.legend(fontsize=8)
    ax.set_title("Speed", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def make_figures(data: dict[str, Any], out: Path) -> list[tuple[str, Path]]:
    """All figures of a report, as (caption, PNG path) under ``out/figures``."""
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    figs: list[tuple[str, Path]] = []
    if plot_ground_states(data, figdir / "ground_state.png"):
        figs.append(("Ground state: a vs c/a against LDA, PBE, PBEsol and experiment", figdir / "ground_state.png"))
    for name, m in data["models"].items():
        q = m.get("quantities", {})
        plot = q.get("phonons", {}).get("files", {}).get("value", {}).get("plot")
        if plot and Path(plot).is_file():
            dst = figdir / f"phonons_{_safe(name)}.png"
            if Path(plot).resolve() != dst.resolve():
                shutil.copy(plot, dst)
            figs.append((f"{name}: phonon bands of the relaxed P4mm cell", dst))
        for key, sweep in q.get("md", {}).items():
            ens, integ = key.split("_", 1)
            dst = figdir / f"md_{_safe(name)}_{key}.png"
            rows = sweep["value"]["rows"]
            plot_sweep(rows, ens, dst, title=f"{name}: {ens.upper()} ({integ})")
            what = "a and c vs T (NPT)" if ens == "npt" else "|Pz| vs T (NVT)"
            figs.append((f"{name}: {what}, {integ}", dst))
        for key, caption in (("parity", "force parity per species vs PBEsol AIMD frames"),
                             ("errors_vs_T", "force, relative-energy and stress errors vs AIMD temperature")):
            src = q.get("accuracy", {}).get("files", {}).get("value", {}).get(key)
            if src and Path(src).is_file():
                dst = figdir / f"accuracy_{_safe(name)}_{key}.png"
                if Path(src).resolve() != dst.resolve():
                    shutil.copy(src, dst)
                functional = m.get("spec", {}).get("functional", "?")
                figs.append((f"{name} (trained on {functional}): {caption}", dst))
    if plot_speed(data, figdir / "speed.png"):
        figs.append(("MD speed vs number of atoms", figdir / "speed.png"))
    return figs


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# --- comparison --------------------------------------------------------------------------------

def compare(new: dict[str, Any], old: dict[str, Any]) -> list[dict[str, Any]]:
    """Changes from ``old`` to ``new``: verdicts that changed, quantities that moved.

    A quantity moved when |diff| > max(threshold, 2 x combined standard error) (thresholds in
    ``reference_data/pto.toml [regression]``).  Each change has ``kind`` ("verdict" or
    ``quantity``), ``model``, ``what``, ``old``, ``new`` and ``worse`` (a verdict that got worse).
    """
    rank = {"pass": 0, "skip": 1, "inconclusive": 2, "fail": 3, "error": 4}
    changes = []
    for name, m in new.get("models", {}).items():
        o = old.get("models", {}).get(name)
        if o is None:
            changes.append({"kind": "model", "model": name, "what": "new model", "old": None, "new": None,
                            "worse": False})
            continue
        for tid, chk in m.get("checks", {}).items():
            prev = o.get("checks", {}).get(tid)
            if prev and prev["status"] != chk["status"]:
                changes.append({"kind": "verdict", "model": name, "what": tid, "old": prev["status"],
                                "new": chk["status"],
                                "worse": rank.get(chk["status"], 4) > rank.get(prev["status"], 4)})
        qn, qo = comparable_quantities(m), comparable_quantities(o)
        for k in sorted(set(qn) & set(qo)):
            (vn, en), (vo, eo) = qn[k], qo[k]
            limit = movement_limit(k, en, eo)
            if abs(vn - vo) > limit:
                changes.append({"kind": "quantity", "model": name, "what": k, "old": vo, "new": vn,
                                "limit": limit, "worse": False})
    return changes


# --- pages -------------------------------------------------------------------------------------

def _checks(data: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    for m in data["models"].values():
        for tid in m.get("checks", {}):
            seen.setdefault(tid, None)
    return list(seen)


def _short(check_id: str) -> str:
    """``test_static.py::test_delta_e_vs_pbesol[mtk]`` -> ``delta e vs pbesol [mtk]``."""
    name = check_id.split("::")[-1]
    return name.removeprefix("test_").replace("_", " ")


def _versions(m: dict[str, Any]) -> str:
    spec = m.get("spec", {})
    pv = ", ".join(f"{k} {v}" for k, v in spec.get("package_versions", {}).items())
    env = m.get("environment")  # set by `pto-checks run` across environments
    where = f"; environment {env['key']} ({env['python']})" if env else ""
    return (f"{spec.get('family', '?')} {spec.get('version', '?')}, trained on {spec.get('functional', '?')}; "
            f"weights {spec.get('fingerprint', '?')[:12]}; {pv}{where}")


def write_markdown(data: dict[str, Any], figs: list[tuple[str, Path]], changes: list[dict[str, Any]] | None,
                   path: Path) -> None:
    """Markdown summary: protocol, versions, verdict matrix with footnoted reasons, changes."""
    checks = _checks(data)
    proto = data.get("protocol", {})
    lines = ["# pto-checks report", "",
             f"Harness {data['harness']['version']}, created {data['harness']['created']}; protocol "
             f"**{proto.get('name', '?')}**{' (reduced)' if proto.get('reduced') else ''}; "
             f"{_engine_text(data)}.", ""]
    if changes is not None:
        lines += ["## Changes since the previous results", ""]
        lines += [f"- {_change_text(c)}" for c in changes] or ["- none"]
        lines.append("")
    lines += ["## Verdicts", "", "| model | " + " | ".join(_short(c) for c in checks) + " |",
              "|---|" + "---|" * len(checks)]
    notes = []
    for name, m in data["models"].items():
        cells = []
        for tid in checks:
            chk = m.get("checks", {}).get(tid)
            if chk is None:
                cells.append("")
                continue
            cell = STATUS_SYMBOL.get(chk["status"], chk["status"])
            if chk["status"] != "pass" and chk.get("message"):
                note = f"[{len(notes) + 1}] {name}, {tid}: {chk['message'].splitlines()[0]}"
                if chk["status"] == "inconclusive" and chk.get("needs"):
                    note += f" (what would decide it: {chk['needs']})"
                notes.append(note)
                cell += f" [{len(notes)}]"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [""] + notes + ["", "## Models", ""]
    lines += [f"- **{name}**: {_versions(m)}" for name, m in data["models"].items()]
    lines += [f"- **{u['model']}**: not run: {u['reason']}" for u in data.get("unavailable", [])]
    lines += ["", "## Figures", ""] + [f"![{cap}]({p.relative_to(path.parent)})" for cap, p in figs]
    path.write_text("\n".join(lines) + "\n")


def _change_text(c: dict[str, Any]) -> str:
    if c["kind"] == "verdict":
        return f"{c['model']}: {c['what']} {c['old']} -> {c['new']}" + (" (WORSE)" if c["worse"] else "")
    if c["kind"] == "quantity":
        return f"{c['model']}: {c['what']} moved {c['old']:.4g} -> {c['new']:.4g} (limit {c['limit']:.3g})"
    return f"{c['model']}: {c['what']}"


def write_html(data: dict[str, Any], figs: list[tuple[str, Path]], changes: list[dict[str, Any]] | None,
               path: Path) -> None:
    """Self-contained HTML page (figures embedded as data URIs; opens with no server)."""
    esc = html.escape
    checks = _checks(data)
    proto = data.get("protocol", {})
    head = ("<tr><th>model</th>" + "".join(
        f"<th title='{esc(c)}'>{esc(_short(c))}</th>" for c in checks) + "</tr>")
    rows = []
    for name, m in data["models"].items():
        cells = []
        for tid in checks:
            chk = m.get("checks", {}).get(tid)
            if chk is None:
                cells.append("<td></td>")
                continue
            st = chk["status"]
            cells.append(f'<td class="{st}" title="{esc(chk.get("message", ""))}">'
                         f"{esc(STATUS_SYMBOL.get(st, st))}</td>")
        rows.append(f'<tr class="model"><th title="{esc(_versions(m))}">{esc(name)}</th>{"".join(cells)}</tr>')
    change_html = ""
    if changes is not None:
        items = "".join(f'<li class="{"worse" if c["worse"] else ""}">{esc(_change_text(c))}</li>'
                        for c in changes) or "<li>none</li>"
        change_html = f"<h2>Changes since the previous results</h2><ul id='changes'>{items}</ul>"
    fig_html = "".join(
        f'<figure><img alt="{esc(cap)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{esc(cap)}</figcaption></figure>'
        for cap, p in figs)
    models = "".join(f"<li><b>{esc(n)}</b>: {esc(_versions(m))}</li>" for n, m in data["models"].items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pto-checks report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}}
table{{border-collapse:collapse;font-size:13px}} td,th{{border:1px solid #ccc;padding:4px 6px}}
th{{max-width:9em;white-space:normal;font-weight:600}}
td.pass{{background:#d8f3d8}} td.fail{{background:#f8d0d0}} td.skip{{background:#eee}}
td.inconclusive{{background:#fff3c4;font-style:italic}}
td.error{{background:#f4a}} li.worse{{color:#b00;font-weight:bold}}
figure{{display:inline-block;margin:8px}} img{{max-width:520px}}
</style></head>
<body>
<h1>pto-checks report</h1>
<p>Harness {esc(str(data['harness']['version']))}, created {esc(str(data['harness']['created']))};
protocol <b>{esc(str(proto.get('name', '?')))}</b>{' (reduced: qualitative only)' if proto.get('reduced') else ''};
{esc(_engine_text(data))}. Hover a cell for the verdict's message.</p>
{change_html}
<h2>Verdicts</h2>
<table id="verdicts">{head}{''.join(rows)}</table>
<h2>Models</h2><ul>{models}</ul>
<h2>Figures</h2>{fig_html}
<script>
window.addEventListener('load', function () {{
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.body.setAttribute('data-figures', imgs.length);
  document.body.setAttribute('data-figures-rendered', ok);
}});
</script>
</body></html>
"""
    path.write_text(page)


def build_report(data: dict[str, Any], out: str | Path, previous: dict[str, Any] | None = None) -> Path:
    """Write ``out/report.html`` and ``out/report.md`` (and ``out/figures``); return the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figs = make_figures(data, out)
    changes = compare(data, previous) if previous is not None else None
    write_markdown(data, figs, changes, out / "report.md")
    write_html(data, figs, changes, out / "report.html")
    return out / "report.html"
