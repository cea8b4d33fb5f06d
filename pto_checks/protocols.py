"""Named protocols: the same code at different fidelity (``--protocol paper|quick|smoke``).

Every result records the protocol that produced it (:meth:`Protocol.to_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class StaticProtocol:
    """0 K relaxation: FrechetCellFilter + BFGS to ``fmax`` (eV/A), at most ``max_steps``."""

    fmax: float = 1e-3
    max_steps: int = 1000


@dataclass(frozen=True)
class PhononProtocol:
    """phonopy finite displacements: ``supercell`` repetitions, ``displacement`` (A)."""

    supercell: tuple[int, int, int] = (2, 2, 2)
    displacement: float = 0.01
    band_points: int = 51
    mesh: tuple[int, int, int] = (8, 8, 8)


@dataclass(frozen=True)
class MDProtocol:
    """Temperature sweeps (NPT and NVT), each temperature started afresh (heating only).

    Units: fs, K, Angstrom.  ``pfactor_ase`` is ASE NPT's pfactor in ASE units, written as the
    study wrote it (``75.0**2.0 * units.fs``).  ``production_fraction`` of the steps at the end
    are averaged.  Sampling every ``sample_every`` steps; a trajectory frame every
    ``trajectory_every`` samples; a checkpoint every ``checkpoint_every`` steps.
    """

    supercell: int = 5
    temperatures_K: tuple[int, ...] = (300, 400, 500, 600, 700, 800, 900, 1000)
    steps: int = 50_000
    timestep_fs: float = 2.0
    production_fraction: float = 0.5
    npt_integrator: str = "melchionna"
    ttime_fs: float = 25.0
    pfactor_ase: float = 75.0**2.0 * 0.09822694788464063  # 75^2 * ase.units.fs, as the study
    mtk_tdamp_fs: float = 100.0
    mtk_pdamp_fs: float = 1000.0
    friction_per_fs: float = 0.01
    start_a: float = 3.90
    start_c: float = 4.15
    nvt_a: float = 3.90
    nvt_c: float = 4.15
    seed: int = 20250311
    sample_every: int = 10
    trajectory_every: int = 50
    checkpoint_every: int = 500


@dataclass(frozen=True)
class AccuracyProtocol:
    """Accuracy tier on the AIMD frames: every ``every``-th frame from ``offset`` (1 = all frames),
    at ``temperatures_K`` (of 300, 450, 900)."""

    every: int = 1
    offset: int = 0
    temperatures_K: tuple[int, ...] = (300, 450, 900)


class InconclusivePolicy(str, Enum):
    """Whether an inconclusive check fails the run (``--inconclusive``): ``fail`` (the default
    of the paper and quick protocols: a gate that cannot decide has not passed) or ``warn``
    (smoke: 0.3 ps decides little; the checks are listed, the run does not fail for them).
    An inconclusive check is never counted as a pass."""

    FAIL = "fail"
    WARN = "warn"


@dataclass(frozen=True)
class Protocol:
    """A named protocol; ``reduced`` marks one cheaper than the published study.
    ``inconclusive``: the default :class:`InconclusivePolicy` (a protocol derived with overrides
    keeps the one it derives from)."""

    name: str
    reduced: bool
    static: StaticProtocol = field(default_factory=StaticProtocol)
    phonon: PhononProtocol = field(default_factory=PhononProtocol)
    md: MDProtocol = field(default_factory=MDProtocol)
    accuracy: AccuracyProtocol = field(default_factory=AccuracyProtocol)
    overrides: tuple[str, ...] = ()
    inconclusive: InconclusivePolicy = InconclusivePolicy.FAIL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **sections: dict[str, Any]) -> Protocol:
        """Copy with fields of sections replaced, e.g. ``static={"fmax": 1e-2}``."""
        new = self
        for section, values in sections.items():
            new = replace(new, **{section: replace(getattr(new, section), **values)})
        return new


PROTOCOLS: dict[str, Protocol] = {
    # the published PTO-test: 625 atoms, 100 ps per temperature, 8 temperatures
    "paper": Protocol("paper", reduced=False),
    # about an hour per model on one GPU: 320 atoms, 20 ps per temperature
    "quick": Protocol("quick", reduced=True,
                      md=MDProtocol(supercell=4, steps=10_000, checkpoint_every=1000)),
    # CI on 2 CPU cores: 40 atoms, 0.3 ps, two temperatures (qualitative only)
    "smoke": Protocol("smoke", reduced=True,
                      md=MDProtocol(supercell=2, temperatures_K=(300, 1000), steps=150,
                                    sample_every=5, trajectory_every=5, checkpoint_every=50),
                      accuracy=AccuracyProtocol(every=10), inconclusive=InconclusivePolicy.WARN),
}


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``section.field=value`` (e.g. ``md.steps=200``, ``md.temperatures_K=300,600``)."""
    key, sep, raw = text.partition("=")
    section, dot, fld = key.strip().partition(".")
    if not sep or not dot:
        raise ValueError(f"override must look like section.field=value, got {text!r}")
    proto = getattr(PROTOCOLS["paper"], section, None)
    if proto is None or not hasattr(proto, fld):
        raise ValueError(f"unknown protocol field {key!r}")
    current = getattr(proto, fld)
    if isinstance(current, tuple):
        value: Any = tuple(type(current[0])(v) for v in raw.split(",") if v)
    elif isinstance(current, bool):
        value = raw.lower() in ("1", "true", "yes")
    else:
        value = type(current)(raw)
    return section, fld, value


def get_protocol(name: str) -> Protocol:
    """Protocol by name; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None


def apply_overrides(protocol: Protocol, overrides: list[str]) -> Protocol:
    """Apply ``section.field=value`` overrides; the result's name gets a ``+custom`` suffix and
    is marked reduced (it is no longer the named protocol), and records the overrides."""
    if not overrides:
        return protocol
    sections: dict[str, dict[str, Any]] = {}
    for text in overrides:
        section, fld, value = parse_override(text)
        sections.setdefault(section, {})[fld] = value
    new = protocol.with_overrides(**sections)
    return replace(new, name=f"{protocol.name}+custom", reduced=True, overrides=tuple(overrides))
