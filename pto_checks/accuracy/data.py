"""The ab initio MD frames of PbTiO3 (300, 450, 900 K): where they are, fetching, checksums, loading.

The frames come from the public repository ``sliutheorygroup/UniPero`` (commit ``272193e``, folders
``data/Task-I/PT-300K``, ``PT-450K``, ``PT-900K``; DeePMD-kit npy layout). They are never committed
to this project (that repository has no license file): the harness looks for them in
``$PTO_CHECKS_DATA_DIR``, then ``../shared/data/`` (from the current directory and from this
checkout), then in its own cache, and otherwise downloads the files listed in :data:`FILES` into the
cache, verifying each against its SHA-256 before anything is kept.

Units (DeePMD-kit conventions): positions and cells in Angstrom (cell vectors as rows), energies in
eV on the DFT code's absolute scale (only differences mean anything), forces in eV/Angstrom, virials
in eV with ``virial = -V * stress`` where ``stress`` is ASE's (positive = tensile) stress, so
``stress = -virial / V`` (:func:`stress_from_virial`; the sign is checked against ASE's stress of a
real model in ``tests/harness/test_accuracy.py``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from pto_checks.models.base import sha256_file

#: Folder name of the data set (under a data directory).
DATASET = "pto-aimd-pbesol"
REPOSITORY = "sliutheorygroup/UniPero"
COMMIT = "272193e"
#: Where a fetch goes when nothing local is found (``$PTO_CHECKS_DATA_URL`` overrides it: a mirror,
#: or a local server in tests). ``{path}`` is the file's path in the repository.
DEFAULT_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/{{path}}"
TEMPERATURES_K = (300, 450, 900)
#: Level of theory of the frames (see reference_data/pto.toml [accuracy.data] for the evidence).
FUNCTIONAL = "PBEsol"
#: DeePMD type index -> chemical symbol (type_map.raw of every folder: Pb, Ti, O).
TYPE_MAP = ("Pb", "Ti", "O")

_NPY = ("box.npy", "coord.npy", "energy.npy", "force.npy", "virial.npy")
_RAW = ("type.raw", "type_map.raw")

#: SHA-256 of every file, keyed by ``PT-<T>K/<name>`` (computed from the copy in ../shared/data,
#: which is the repository's files unchanged).
SHA256 = {
    "PT-300K/box.npy": "2ec8e03103b3d72a88bb7db91b309b7aabde9fd289c46af2c71d932c2e8042e3",
    "PT-300K/coord.npy": "ecab5020e9ff16b1b86269a55839b28f00a299d541085676220e3ea4adb35983",
    "PT-300K/energy.npy": "6944b462e2b0b5984b7582ca5a8b19e21b5f90e230bac31828d3e525b522ec37",
    "PT-300K/force.npy": "655a251139a2e4ab592dd8890a922900e40d74e7f7a5d630534d47c2f5dce5ea",
    "PT-300K/type.raw": "50ead3d1b9b4074ef3e3f21b26cfb64462b8eafb46feb7eecdfbc41c032169c1",
    "PT-300K/type_map.raw": "862dbbdb4d1e76637357181e32e05e03a10faa345584154fd10e8f5a9667ba05",
    "PT-300K/virial.npy": "1e13657b74ba5ce83f5296e0bc69d3bef107905d7aa1d645e98f0719a8ff91a6",
    "PT-450K/box.npy": "72e6e8db82bffbb87249ea43c91df3f54ddab265f0fa3ba92e81c3fe12501e7b",
    "PT-450K/coord.npy": "6864e5d175e53b089376bce510bff196ca61863ef2824931d31f568021f1964a",
    "PT-450K/energy.npy": "db6175afd4dec88f61c230f76f3f7138882ba3a0f9193bfd23e2fc96341b92c8",
    "PT-450K/force.npy": "4ca69dd86f9efab16dd3d7439bf8e2cad339ce3d6acda16bc165232a86e69f39",
    "PT-450K/type.raw": "50ead3d1b9b4074ef3e3f21b26cfb64462b8eafb46feb7eecdfbc41c032169c1",
    "PT-450K/type_map.raw": "862dbbdb4d1e76637357181e32e05e03a10faa345584154fd10e8f5a9667ba05",
    "PT-450K/virial.npy": "7f59bf8c2b434228e8a06d5e7c9e7fa8f9f70eae9187e33a60e36f64159f4bab",
    "PT-900K/box.npy": "2db499815257dafbbcbf9b05d8acd2493392c38c2b2c2f1a933cdc7bfff4bde3",
    "PT-900K/coord.npy": "cb6a0eedd9add1689739572441cbce0bae7d5625536501698ea2cdfaebdd83e2",
    "PT-900K/energy.npy": "3f879287a9bc0fac641a1654e48bb7478130c2d4a1a923921b944e2cece5cbbf",
    "PT-900K/force.npy": "7a641241bac42ef8bf4184b0b6da24deb8bc022cea47cf8fe4d8537e9655bb74",
    "PT-900K/type.raw": "50ead3d1b9b4074ef3e3f21b26cfb64462b8eafb46feb7eecdfbc41c032169c1",
    "PT-900K/type_map.raw": "862dbbdb4d1e76637357181e32e05e03a10faa345584154fd10e8f5a9667ba05",
    "PT-900K/virial.npy": "cc60e2a760f504bc912885ee907ddf82e4acbab550db2ba8f87e0a33b5d57ad1",
}


class DataUnavailable(RuntimeError):
    """The frames are neither found locally nor fetchable. The message names the fix (one line)."""


class ChecksumMismatch(RuntimeError):
    """A file's SHA-256 differs from :data:`SHA256` (corrupt or different data); nothing is kept."""


def folder(temperature_K: int) -> str:
    """Folder name of one temperature, e.g. ``PT-300K``."""
    return f"PT-{int(temperature_K)}K"


def upstream_path(key: str) -> str:
    """Path in the source repository of ``PT-<T>K/<name>`` (npy files live in ``deepmd/set.000``)."""
    sub, name = key.split("/")
    inner = f"deepmd/set.000/{name}" if name.endswith(".npy") else f"deepmd/{name}"
    return f"data/Task-I/{sub}/{inner}"


def data_dirs() -> list[Path]:
    """Directories searched for ``pto-aimd-pbesol/``, in order: ``$PTO_CHECKS_DATA_DIR`` (a path
    list), then ``../shared/data`` from the current directory and from this source checkout."""
    from pto_checks.models.base import shared_dirs

    return shared_dirs("data", "PTO_CHECKS_DATA_DIR")


def _file_in(root: Path, key: str) -> Path | None:
    """``key`` in a copy rooted at ``root``: flat (``PT-300K/coord.npy``) or the repository's layout."""
    sub, name = key.split("/")
    for p in (root / key, root / sub / "deepmd" / "set.000" / name, root / sub / "deepmd" / name):
        if p.is_file():
            return p
    return None




def verify(root: Path, keys: Iterable[str] | None = None) -> None:
    """Raise :class:`ChecksumMismatch` unless every file of ``root`` matches :data:`SHA256`."""
    bad = []
    for key in keys or SHA256:
        p = _file_in(root, key)
        if p is None:
            bad.append(f"{key} missing")
        elif sha256_file(p) != SHA256[key]:
            bad.append(f"{key} sha256 {sha256_file(p)[:12]}... != {SHA256[key][:12]}...")
    if bad:
        raise ChecksumMismatch(f"{root}: {'; '.join(bad)}")


def checksum(keys: Iterable[str] | None = None) -> str:
    """One SHA-256 over the recorded checksums of ``keys`` (identifies the data in cache keys)."""
    return hashlib.sha256("".join(f"{k}={SHA256[k]};" for k in sorted(keys or SHA256)).encode()).hexdigest()


def keys_for(temperatures_K: Iterable[int]) -> list[str]:
    return [k for k in SHA256 if int(k.split("/")[0][3:-1]) in set(map(int, temperatures_K))]


def find_local(temperatures_K: Iterable[int] = TEMPERATURES_K, cache_dir: Path | None = None) -> Path | None:
    """A local copy holding every file of ``temperatures_K`` (searched as :func:`data_dirs`, then
    ``cache_dir``), or None. A user's copy whose files do not match their checksums is an error; a
    damaged copy in ``cache_dir`` (our own download) is removed, so that it is fetched again."""
    keys = keys_for(temperatures_K)
    roots = [d / DATASET for d in data_dirs()] + [d for d in data_dirs()]
    for root in roots:
        if all(_file_in(root, k) for k in keys):
            verify(root, keys)
            return root
    if cache_dir is not None and all(_file_in(Path(cache_dir) / DATASET, k) for k in keys):
        cached = Path(cache_dir) / DATASET
        try:
            verify(cached, keys)
        except ChecksumMismatch:  # our own download, damaged since: drop it, fetch again
            shutil.rmtree(cached, ignore_errors=True)
            return None
        return cached
    return None


def fetch(cache_dir: str | os.PathLike[str], temperatures_K: Iterable[int] = TEMPERATURES_K,
          url: str | None = None, timeout_s: float = 60.0) -> Path:
    """Download the files of ``temperatures_K`` into ``cache_dir/pto-aimd-pbesol`` and return that folder.

    ``url`` is a template with ``{path}`` (the file's path in the repository); default
    ``$PTO_CHECKS_DATA_URL`` or :data:`DEFAULT_URL`. Each file is verified against :data:`SHA256`
    in a temporary folder; only a complete, verified set is moved into place (atomically, per
    file), so a mismatch or an interruption leaves nothing behind. Raises :class:`ChecksumMismatch`
    or :class:`DataUnavailable` (network errors).
    """
    url = url or os.environ.get("PTO_CHECKS_DATA_URL") or DEFAULT_URL
    final = Path(cache_dir) / DATASET
    final.parent.mkdir(parents=True, exist_ok=True)
    keys = keys_for(temperatures_K)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=final.parent) as tmp:
        for key in keys:
            dst = Path(tmp) / key
            dst.parent.mkdir(parents=True, exist_ok=True)
            src = url.format(path=upstream_path(key))
            try:
                with urllib.request.urlopen(src, timeout=timeout_s) as resp, open(dst, "wb") as fh:
                    shutil.copyfileobj(resp, fh)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise DataUnavailable(f"cannot fetch {src}: {exc}") from exc
            got = sha256_file(dst)
            if got != SHA256[key]:
                raise ChecksumMismatch(f"{src}: sha256 {got} != recorded {SHA256[key]}; not cached")
        for key in keys:
            target = final / key
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(Path(tmp) / key, target)
    return final


def ensure(cache_dir: str | os.PathLike[str] | None, temperatures_K: Iterable[int] = TEMPERATURES_K,
           allow_fetch: bool = True) -> Path:
    """The data folder: a local copy (:func:`find_local`) or a fresh fetch into ``cache_dir``.

    Raises :class:`DataUnavailable` with a one-line message naming the fix.
    """
    temps = tuple(temperatures_K)
    root = find_local(temps, Path(cache_dir) if cache_dir else None)
    if root is not None:
        return root
    fix = (f"put the UniPero frames ({REPOSITORY}@{COMMIT} data/Task-I/PT-{{300,450,900}}K) in "
           f"$PTO_CHECKS_DATA_DIR/{DATASET}/ or ../shared/data/{DATASET}/, or allow network access "
           "to raw.githubusercontent.com (or set $PTO_CHECKS_DATA_URL to a mirror)")
    if not allow_fetch or cache_dir is None:
        raise DataUnavailable(f"AIMD frames not found locally; fix: {fix}")
    try:
        return fetch(cache_dir, temps)
    except DataUnavailable as exc:
        raise DataUnavailable(f"AIMD frames not found locally and {exc}; fix: {fix}") from None


@dataclass(frozen=True)
class FrameSet:
    """The frames of one temperature (a subsample of them: ``indices`` into the full set).

    Shapes: ``positions`` (n, N, 3) Angstrom; ``cells`` (n, 3, 3) Angstrom (rows);
    ``energy`` (n,) eV; ``forces`` (n, N, 3) eV/Angstrom; ``stress`` (n, 3, 3) eV/Angstrom^3 in ASE's
    sign convention (from the virial, :func:`stress_from_virial`); ``symbols`` (N,).
    """

    temperature_K: int
    symbols: tuple[str, ...]
    indices: np.ndarray
    n_total: int
    positions: np.ndarray
    cells: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    stress: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    def atoms(self, i: int) -> Atoms:
        """Frame ``i`` (of this subsample) as periodic ASE Atoms, without a calculator."""
        return Atoms(self.symbols, positions=self.positions[i], cell=self.cells[i], pbc=True)


def stress_from_virial(virial_eV: np.ndarray, volume_A3: np.ndarray) -> np.ndarray:
    """ASE stress (eV/A^3, positive = tensile) from DeePMD virials (eV): ``-virial / V``.

    ``virial_eV`` (n, 9) or (n, 3, 3); ``volume_A3`` (n,).
    """
    v = np.asarray(virial_eV, dtype=float).reshape(-1, 3, 3)
    return -v / np.asarray(volume_A3, dtype=float)[:, None, None]


def subsample_indices(n: int, every: int = 1, offset: int = 0) -> np.ndarray:
    """Every ``every``-th frame starting at ``offset % every`` (every=1: all frames)."""
    every = max(1, int(every))
    return np.arange(int(offset) % every, n, every)


def load(root: str | os.PathLike[str], temperature_K: int, every: int = 1, offset: int = 0) -> FrameSet:
    """Load one temperature's frames from ``root`` (a verified copy) as a :class:`FrameSet`."""
    root = Path(root)
    key = folder(temperature_K)

    def path(name: str) -> Path:
        p = _file_in(root, f"{key}/{name}")
        if p is None:
            raise DataUnavailable(f"{root}: {key}/{name} missing")
        return p

    type_map = path("type_map.raw").read_text().split()
    types = [int(t) for t in path("type.raw").read_text().split()]
    symbols = tuple(type_map[t] for t in types)
    box = np.load(path("box.npy")).reshape(-1, 3, 3)
    n_total = len(box)
    idx = subsample_indices(n_total, every, offset)
    n_atoms = len(symbols)
    coord = np.load(path("coord.npy")).reshape(n_total, n_atoms, 3)
    force = np.load(path("force.npy")).reshape(n_total, n_atoms, 3)
    energy = np.load(path("energy.npy")).reshape(n_total)
    virial = np.load(path("virial.npy")).reshape(n_total, 3, 3)
    volume = np.abs(np.linalg.det(box))
    stress = stress_from_virial(virial, volume)
    return FrameSet(int(temperature_K), symbols, idx, n_total, coord[idx], box[idx], energy[idx],
                    force[idx], stress[idx])
