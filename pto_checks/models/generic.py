"""Any ASE calculator from ``module:callable`` and keyword arguments."""

from __future__ import annotations

import importlib

from pto_checks.models.base import Loaded, ModelSpec, ModelUnavailable, package_version, sha256_json


def load(spec: ModelSpec, device: str) -> Loaded:
    """Call ``options['factory']`` (``"pkg.module:callable"``) with ``options['kwargs']``.

    If the callable accepts ``device`` it is not passed implicitly: put it in ``kwargs``.
    The fingerprint hashes the factory, its arguments and the package's version (an arbitrary
    calculator has no weights file we could know of); pass ``weights`` to hash a file too.
    """
    factory = spec.options.get("factory", "")
    module_name, _, attr = factory.partition(":")
    if not module_name or not attr:
        raise ModelUnavailable(spec.name, "unknown", f"factory must be 'module:callable', got {factory!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelUnavailable(spec.name, "package", f"cannot import {module_name!r}: {exc}") from exc
    try:
        fn = getattr(module, attr)
    except AttributeError as exc:
        raise ModelUnavailable(spec.name, "unknown", f"{module_name!r} has no {attr!r}") from exc
    kwargs = dict(spec.options.get("kwargs", {}))
    calc = fn(**kwargs)
    top = module_name.split(".")[0]
    ident = {"factory": factory, "kwargs": kwargs, "version": package_version(top)}
    files = []
    if spec.options.get("weights"):
        from pto_checks.models.base import sha256_files

        ident["weights_sha256"] = sha256_files([spec.options["weights"]])
        files = [str(spec.options["weights"])]
    return Loaded(calc, sha256_json(ident), files)
