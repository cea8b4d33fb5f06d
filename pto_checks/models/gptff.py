"""GPTFF adapter (GPTFF v2), through GPTFF's own ASE calculator where the package is installed.

GPTFF's calculator (gptff 1.0.1) returns stress in GPa, as its README says; ASE (relaxation with a
cell filter, NPT) expects eV/A^3, so the adapter converts it (``options['stress_unit']`` overrides
the detection). The PTO study's scripts used the calculator as it is, feeding GPa to ASE.
"""

from __future__ import annotations

from pathlib import Path

from pto_checks.models.base import (
    Loaded,
    ModelSpec,
    ModelUnavailable,
    find_model_file,
    require,
    sha256_files,
)


def load(spec: ModelSpec, device: str) -> Loaded:
    """Load GPTFF weights from ``options['path']`` or ``<models dir>/gptff/gptff_v2.pth``."""
    path = spec.options.get("path")
    if path is None:
        found, tried = find_model_file("gptff/gptff_v2.pth")
        if found is None:
            raise ModelUnavailable(
                spec.name, "weights",
                "GPTFF v2 weights not found; looked in " + ", ".join(map(str, tried))
                + ". Fix: --model gptff:/path/to/gptff_v2.pth or set PTO_CHECKS_MODELS_DIR",
            )
        path = found
    if not Path(path).is_file():
        raise ModelUnavailable(spec.name, "weights", f"GPTFF weights not found: {path}")
    require("gptff.model.mpredict", model=spec.name, extra=None,
            hint="GPTFF is not on PyPI: install it from its source repository "
                 "(github.com/atomly-materials-research-lab/GPTFF)")
    from gptff.model.mpredict import ASECalculator

    unit = spec.options.get("stress_unit") or _stress_unit(ASECalculator)
    if unit not in ("GPa", "eV/A3"):
        raise ModelUnavailable(spec.name, "unknown", f"stress_unit must be 'GPa' or 'eV/A3', got {unit!r}")
    calc = (_EVPerA3(ASECalculator) if unit == "GPa" else ASECalculator)(str(path), device)
    return Loaded(calc, sha256_files([path]), [str(path)], {"gptff_stress_unit": unit})


def _stress_unit(cls: type) -> str:
    """The stress unit of GPTFF's ASE calculator: ``GPa`` where it multiplies by 160.21766208 eV/A^3
    per GPa (gptff 1.0.1 at c850738, as its README says: "stress (GPa)"), else ASE's eV/A^3."""
    import inspect

    try:
        return "GPa" if "160.21766208" in inspect.getsource(cls.get_efs) else "eV/A3"
    except (OSError, TypeError, AttributeError):
        return "GPa"


def _EVPerA3(base: type) -> type:  # noqa: N802 (a class factory)
    """GPTFF's calculator with its stress (GPa) given in ASE's eV/A^3 (nothing else changed)."""
    from ase import units

    class GPTFFCalculator(base):
        def calculate(self, atoms=None, properties=None, system_changes=None):
            super().calculate(atoms, properties, system_changes)
            if self.results.get("stress") is not None:
                self.results["stress"] = self.results["stress"] * units.GPa

    return GPTFFCalculator
