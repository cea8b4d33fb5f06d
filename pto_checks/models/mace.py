"""MACE adapter: MACE-MP-0b medium from the hub, or any MACE model file (e.g. fine-tuned).

A file pickled under another e3nn version (every file saved under mace-torch's pinned e3nn 0.4.4)
is rebuilt once under the installed e3nn (:mod:`.mace_convert`); its fingerprint stays the SHA-256
of the user's file.
"""

from __future__ import annotations

from pathlib import Path

from pto_checks.models.base import (
    Loaded,
    ModelSpec,
    ModelUnavailable,
    require,
    sha256_files,
    sha256_module,
)


def load(spec: ModelSpec, device: str) -> Loaded:
    """Load ``spec.options['path']`` (a ``.model`` file) or the hub model ``options['hub']``."""
    require("mace.calculators", model=spec.name, extra="mace")
    from mace.calculators import MACECalculator, mace_mp

    dtype = spec.options.get("default_dtype", "float64")
    path = spec.options.get("path")
    if path:
        if not Path(path).is_file():
            raise ModelUnavailable(spec.name, "weights", f"MACE model file not found: {path}. Fix: "
                                   "--model mace:/path/to/file.model (a model saved by MACE)")
        try:
            calc = MACECalculator(model_paths=str(path), device=device, default_dtype=dtype)
        except Exception as exc:
            readable, details = _converted(spec, path, exc)
            calc = MACECalculator(model_paths=str(readable), device=device, default_dtype=dtype)
            return Loaded(calc, details["file_sha256"], [str(path)], details)
        return Loaded(calc, sha256_module(calc.models[0]), [str(path)], {"file_sha256": sha256_files([path])})
    hub = spec.options.get("hub", "medium-0b")
    if Path(hub).is_file():  # the hub model's file, downloaded elsewhere: mace_mp(model=PATH)
        try:
            calc = mace_mp(model=hub, device=device, default_dtype=dtype)
        except Exception as exc:
            readable, details = _converted(spec, hub, exc)
            calc = mace_mp(model=str(readable), device=device, default_dtype=dtype)
            return Loaded(calc, details["file_sha256"], [str(hub)], {"hub": hub, **details})
        return Loaded(calc, sha256_files([hub]), [str(hub)], {"hub": hub})
    try:
        calc = mace_mp(model=hub, device=device, default_dtype=dtype)
    except Exception as exc:  # network errors come in many types
        raise ModelUnavailable(
            spec.name,
            "weights",
            f"MACE-MP {hub!r} could not be downloaded ({type(exc).__name__}: {exc}). Fix: download "
            "the .model file on a machine with internet and run --model mace:/path/to/file.model",
        ) from exc
    return Loaded(calc, sha256_module(calc.models[0]), details={"hub": hub})


def _converted(spec: ModelSpec, path: str | Path, exc: Exception) -> tuple[Path, dict]:
    """The file rebuilt under the installed e3nn (cached), or the load error if it is another one."""
    from pto_checks.models import mace_convert

    if not mace_convert.is_e3nn_mismatch(exc):
        raise ModelUnavailable(spec.name, "weights",
                               f"MACE could not load {path}: {type(exc).__name__}: {exc}") from exc
    import e3nn

    sha = mace_convert.file_sha256(path)
    try:
        out = mace_convert.converted_path(path, sha)
    except Exception as conv_exc:
        raise ModelUnavailable(
            spec.name, "weights",
            f"{path} was saved under another e3nn version than the installed {e3nn.__version__} "
            f"({type(exc).__name__}: {exc}) and could not be converted ({type(conv_exc).__name__}: {conv_exc}). "
            "Fix: run it in mace-torch's own environment: bash scripts/install.sh mace-legacy",
        ) from conv_exc
    return out, {"file_sha256": sha, "converted_for_e3nn": e3nn.__version__, "converted_file": str(out),
                 "load_error_before_conversion": f"{type(exc).__name__}: {exc}"[:200]}
