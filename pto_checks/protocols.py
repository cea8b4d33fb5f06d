"""Named protocols: the same code at different fidelity (``--protocol paper|quick|smoke``).

Every result records the protocol that produced it (:meth:`Protocol.to_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
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
class Protocol:
    """A named protocol; ``reduced`` marks one cheaper than the published study."""

    name: str
    reduced: bool
    static: StaticProtocol = field(default_factory=StaticProtocol)
    phonon: PhononProtocol = field(default_factory=PhononProtocol)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **sections: dict[str, Any]) -> Protocol:
        """Copy with fields of sections replaced, e.g. ``static={"fmax": 1e-2}``."""
        new = self
        for section, values in sections.items():
            new = replace(new, **{section: replace(getattr(new, section), **values)})
        return new


PROTOCOLS: dict[str, Protocol] = {
    "paper": Protocol("paper", reduced=False),
    "quick": Protocol("quick", reduced=True),
    "smoke": Protocol("smoke", reduced=True),
}


def get_protocol(name: str) -> Protocol:
    """Protocol by name; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None
