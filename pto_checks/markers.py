"""The one list of pto-checks markers (registered by the plugin; the shipped checks use them).  The
check that a ``-m`` expression names only markers that exist is in the plugin layer
(:mod:`pto_checks.plugin.marker_expression`: it reads pytest's expression parser)."""

from __future__ import annotations

MARKERS: dict[str, str] = {
    "harness": "the harness's own fast CPU tests (unit, property-based, synthetic models)",
    "sanity": "per-model checks that catch silently broken weights or units",
    "static": "0 K structure checks (relaxed lattice, tetragonality, polar ground state)",
    "phonon": "harmonic phonon checks (no imaginary modes)",
    "dynamic": "finite-temperature MD checks",
    "npt": "NPT molecular dynamics checks",
    "nvt": "NVT molecular dynamics checks",
    "slow": "takes minutes on CPU",
    "regression": "CI-gate comparison with --baseline results",
    "benchmark": "speed benchmarks (pytest-benchmark)",
    "conservation": "energy-force and energy-stress consistency, a smooth energy surface, NVE energy conservation "
                    "(CPU-cheap)",
    "accuracy": "energies, forces and stresses against PBEsol ab initio MD frames of PbTiO3 (CPU-cheap)",
    "equivalence": "the batched MD engine against the ASE engine, per model (runs only when -m names it)",
}


def register(config) -> None:
    """Register every marker on a pytest config."""
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
