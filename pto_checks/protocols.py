"""Named protocols: the same code at different fidelity (``--protocol paper|quick|cpu|smoke``).

Every result records the protocol that produced it (:meth:`Protocol.to_dict`).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from enum import Enum
from typing import Any

#: the cached stages a protocol field can affect (see :func:`key_parts`)
STAGES = ("ground_state", "phonons", "md", "accuracy")


class ProtocolError(ValueError):
    """A protocol field outside its allowed range (one line: field, value, allowed range)."""


@dataclass(frozen=True)
class Allowed:
    """Allowed values of a protocol field: numbers in [lo, hi] (open ends with ``lo_open`` /
    ``hi_open``), ``integer`` for whole numbers; tuples: each item so, ``length`` items exactly
    or at least ``min_length``; or one of ``choices``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    length: int | None = None
    min_length: int | None = None
    choices: tuple[Any, ...] | None = None

    def _item_ok(self, v: Any) -> bool:
        if self.choices is not None:
            return v in self.choices
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if self.integer and not float(v).is_integer():
            return False
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def check(self, value: Any) -> bool:
        if self.length is not None or self.min_length is not None:
            if not isinstance(value, tuple):
                return False
            if self.length is not None and len(value) != self.length:
                return False
            if self.min_length is not None and len(value) < self.min_length:
                return False
            return all(self._item_ok(v) for v in value)
        return self._item_ok(value)

    def describe(self) -> str:
        if self.choices is not None:
            one = "one of " + ", ".join(map(str, self.choices))
            if self.min_length is not None:
                return f"at least {self.min_length} comma-separated value(s), each {one}"
            return one
        kind = "an integer" if self.integer else "a number"
        bounds = []
        if self.lo is not None:
            bounds.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            bounds.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        item = f"{kind} {' and '.join(bounds)}".strip()
        if self.length is not None:
            return f"{self.length} comma-separated values, each {item}"
        if self.min_length is not None:
            return f"at least {self.min_length} comma-separated value(s), each {item}"
        return item


def _f(default: Any, allowed: Allowed, affects: tuple[str, ...], why: str = "") -> Any:
    """A protocol field with its allowed range and the cached stages whose result it changes.

    A field that affects no stage says ``why`` (e.g. averages recomputed on read); the property
    test in ``tests/harness/test_faults.py`` holds every field to what it declares.
    """
    return field(default=default, metadata={"allowed": allowed, "affects": affects, "why": why})


_POS = Allowed(lo=0, lo_open=True)
#: Upper bound of MD step counts (``md.steps``, ``md.max_steps`` and the intervals counted in steps):
#: 10^7 steps are 20 ns at 2 fs, 200 times the study's 100 ps per temperature and about two days per
#: temperature for 625 atoms on one GPU (about 60 steps/s): past it a run would never finish, and a
#: run keeps its whole history in memory and in each checkpoint (steps / sample_every samples), so a
#: mistyped 1e12 would slow to a crawl instead of running.
MAX_MD_STEPS = 10_000_000
#: Upper bound of ``static.max_steps``: BFGS relaxes the 5-atom cells here in under 200 steps.
MAX_RELAX_STEPS = 100_000
#: Seeds are numpy ``SeedSequence`` entropy: non-negative; 32 bits are plenty and portable.
_SEED = Allowed(lo=0, hi=2**32 - 1, integer=True)
_STEPS = Allowed(lo=1, hi=MAX_MD_STEPS, integer=True)
_LATTICE = Allowed(lo=2.0, hi=10.0)  # Angstrom per perovskite cell


@dataclass(frozen=True)
class StaticProtocol:
    """0 K relaxation: FrechetCellFilter + BFGS to ``fmax`` (eV/A), at most ``max_steps``.

    ``symprec`` (Angstrom): the one symmetry tolerance of the harness, used by the relaxation
    (``FixSymmetry``), by the cleaning of the relaxed cell, by phonopy and by the space groups in
    the report (reasoning in ``reference_data/pto.toml [tolerances.symmetry]``).
    ``hold_symmetry``: relax the tetragonal cell with P4mm held (the phonons and the 0 K checks use
    it); False uses the unconstrained relaxation instead (only to show what holding it changes).
    The unconstrained observation ("does the model keep P4mm?") starts from the P4mm cell with
    every atom displaced at random by ``free_start_rattle_A`` (rms, Angstrom, seed
    ``free_start_seed``) and the cell sheared by ``free_start_shear`` (all three shear strains),
    so that any symmetry-lowering instability can develop.
    """

    fmax: float = _f(1e-3, Allowed(lo=0, lo_open=True, hi=1.0), ("ground_state",))
    max_steps: int = _f(1000, Allowed(lo=1, hi=MAX_RELAX_STEPS, integer=True), ("ground_state",))
    symprec: float = _f(1e-3, Allowed(lo=0, lo_open=True, hi=0.1), ("ground_state", "phonons"))
    hold_symmetry: bool = _f(True, Allowed(choices=(True, False)), ("ground_state", "phonons"))
    free_start_rattle_A: float = _f(0.02, Allowed(lo=0, hi=0.5), ("ground_state",))
    free_start_shear: float = _f(0.003, Allowed(lo=0, hi=0.1), ("ground_state",))
    free_start_seed: int = _f(7, _SEED, ("ground_state",))


@dataclass(frozen=True)
class PhononProtocol:
    """phonopy finite displacements: ``supercell`` repetitions, ``displacement`` (A), band path
    with ``band_points`` per segment, Gamma-centred ``mesh``.  ``escalation``: the larger n x n x n
    supercells recomputed, in order and only while a frequency below the threshold sits at a q
    that the current supercell only interpolates (the rule: ``reference_data/pto.toml
    [tolerances.phonon]``).  ``exact_probe_max_atoms``: a dip still interpolated after the
    escalation is recomputed exactly with a diagonal supercell commensurate with its q, when that
    supercell has at most this many atoms (0: never)."""

    supercell: tuple[int, int, int] = _f((2, 2, 2), Allowed(lo=1, hi=10, integer=True, length=3), ("phonons",))
    displacement: float = _f(0.01, Allowed(lo=0, lo_open=True, hi=0.5), ("phonons",))
    band_points: int = _f(51, Allowed(lo=2, hi=10_000, integer=True), ("phonons",))
    mesh: tuple[int, int, int] = _f((8, 8, 8), Allowed(lo=1, hi=100, integer=True, length=3), ("phonons",))
    escalation: tuple[int, ...] = _f((3, 4), Allowed(lo=2, hi=8, integer=True, min_length=0), ("phonons",))
    exact_probe_max_atoms: int = _f(400, Allowed(lo=0, hi=5000, integer=True), ("phonons",))


_MD = ("md",)


@dataclass(frozen=True)
class MDProtocol:
    """Temperature sweeps (NPT and NVT), each temperature started afresh (heating only).

    Units: fs, K, Angstrom.  ``pfactor_ase`` is ASE NPT's pfactor in ASE units, written as the
    study wrote it (``75.0**2.0 * units.fs``).  ``production_fraction`` of the steps at the end
    are averaged.  Sampling every ``sample_every`` steps; a trajectory frame every
    ``trajectory_every`` samples; a checkpoint every ``checkpoint_every`` steps.

    Sequential MD (:mod:`pto_checks.md.sequential`): with ``max_steps`` > ``steps`` each
    temperature runs in chunks (looks at ``steps``, 2 ``steps``, 4 ``steps``, ... up to
    ``max_steps``) until its phase is decided at the Bonferroni-corrected level, or the cap;
    ``steps`` is then the minimum.  ``max_steps`` = 0 (the default) runs a fixed ``steps``.  After
    the grid, temperatures are added by bisection between the last polar and the first non-polar
    one until the bracket is below ``tc_resolution_K`` (K), and a cooling branch is run from the
    hottest temperature's final state down the grid (``cooling``).
    ``replicas`` independent runs per temperature (seeds ``seed + k``, k < replicas; in one batch on
    the batched engine) make one row, its intervals from the spread between the replicas
    (:func:`pto_checks.statistics.combine_replicas`).  ``temperatures_K`` are sorted and
    de-duplicated.
    Each field declares its allowed range and whether it changes a cached MD run (``_f``).
    """

    supercell: int = _f(5, Allowed(lo=1, hi=20, integer=True), _MD)
    # up to 1300 K: the study's re-entrant case (cubic near 1100 K, tetragonal again above) and the
    # NVT losses of Pz near 1100 K lie above 1000 K, so a grid ending there cannot decide them
    temperatures_K: tuple[int, ...] = _f((300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1300),
                                         Allowed(lo=0, lo_open=True, hi=5000, min_length=1), (),
                                         "one cache entry per temperature: each task's temperature_K is keyed")
    steps: int = _f(50_000, _STEPS, _MD)
    timestep_fs: float = _f(2.0, Allowed(lo=0, lo_open=True, hi=10.0), _MD)
    production_fraction: float = _f(0.5, Allowed(lo=0, lo_open=True, hi=1.0), (),
                                    "averages are recomputed on read from the stored samples.csv")
    npt_integrator: str = _f("melchionna", Allowed(choices=("melchionna", "mtk")), (),
                             "the default choice only: each task's own integrator is keyed")
    ttime_fs: float = _f(25.0, _POS, _MD)
    pfactor_ase: float = _f(75.0**2.0 * 0.09822694788464063, _POS, _MD)  # 75^2 * ase.units.fs, as the study
    mtk_tdamp_fs: float = _f(100.0, _POS, _MD)
    mtk_pdamp_fs: float = _f(1000.0, _POS, _MD)
    friction_per_fs: float = _f(0.01, _POS, _MD)
    start_a: float = _f(3.90, _LATTICE, _MD)
    start_c: float = _f(4.15, _LATTICE, _MD)
    nvt_a: float = _f(3.90, _LATTICE, _MD)
    nvt_c: float = _f(4.15, _LATTICE, _MD)
    seed: int = _f(20250311, _SEED, _MD)
    sample_every: int = _f(10, _STEPS, _MD)
    trajectory_every: int = _f(50, _STEPS, _MD)
    checkpoint_every: int = _f(500, _STEPS, _MD)
    max_steps: int = _f(0, Allowed(lo=0, hi=MAX_MD_STEPS, integer=True), _MD,
                        "sequential MD: how long a temperature may run and the looks' Bonferroni level")
    # the sweep's plan (which runs a sequential sweep makes), not what any run computes: not in a
    # run's cache key, so a finer Tc or a cooling branch asked for later reuses every run already made
    tc_resolution_K: float = _f(25.0, Allowed(lo=0, lo_open=True, hi=5000), (),
                                "sequential MD: which bisection temperatures are run")
    cooling: bool = _f(True, Allowed(choices=(True, False)), (), "sequential MD: whether a cooling branch is run")
    replicas: int = _f(1, Allowed(lo=1, hi=64, integer=True), _MD)

    def __post_init__(self) -> None:
        # one run per temperature, in rising order: a repeated temperature would be two rows of one
        # phase, and the Tc bracket reads the grid in order
        temps = self.temperatures_K
        if isinstance(temps, tuple) and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in temps):
            object.__setattr__(self, "temperatures_K", tuple(sorted(set(temps))))
        # cross-field rules of sequential MD (each field's own range: Protocol.validate / parse_override)
        if not all(isinstance(v, (int, float)) and v > 0 for v in (self.steps, self.sample_every)):
            return  # out of its own range: validate() names the field
        if self.max_steps and self.max_steps < self.steps:
            raise ProtocolError(f"protocol field md.max_steps={self.max_steps} is out of range: allowed 0 (fixed "
                                f"length) or >= md.steps ({self.steps}); set md.max_steps={self.steps * 8} for a "
                                "sequential run")
        if self.max_steps and self.steps % self.sample_every:
            raise ProtocolError(f"sequential MD looks at multiples of md.steps ({self.steps}): it must be a multiple "
                                f"of md.sample_every ({self.sample_every})")
        if self.max_steps and isinstance(self.replicas, int) and self.replicas > 1:
            raise ProtocolError(f"protocol field md.replicas={self.replicas} is out of range with sequential MD "
                                f"(md.max_steps={self.max_steps}): allowed 1; set md.replicas=1 or md.max_steps=0")
        if isinstance(self.tc_resolution_K, (int, float)) and not self.tc_resolution_K > 0:
            raise ProtocolError(f"protocol field md.tc_resolution_K={self.tc_resolution_K} is out of range: "
                                "allowed a number > 0 (K)")

    @property
    def sequential(self) -> bool:
        """Whether temperatures run in chunks until decided (``max_steps`` > ``steps``)."""
        return self.max_steps > self.steps


@dataclass(frozen=True)
class AccuracyProtocol:
    """Accuracy tier on the AIMD frames: every ``every``-th frame from ``offset`` (1 = all frames),
    at ``temperatures_K`` (of 300, 450, 900).  The accuracy stage keys its cache entries by
    temperature, ``every`` and ``offset`` (modulo ``every``): :func:`pto_checks.accuracy.stage.accuracy_key`."""

    every: int = _f(1, Allowed(lo=1, hi=10_000, integer=True), ("accuracy",))
    offset: int = _f(0, Allowed(lo=0, hi=10_000, integer=True), ("accuracy",))
    temperatures_K: tuple[int, ...] = _f((300, 450, 900), Allowed(choices=(300, 450, 900), min_length=1), (),
                                         "one cache entry per temperature: each entry's temperature_K is keyed")


SECTIONS = {"static": StaticProtocol, "phonon": PhononProtocol, "md": MDProtocol, "accuracy": AccuracyProtocol}


def key_parts(section: Any, stage: str) -> dict[str, Any]:
    """The fields of a protocol section (a dataclass instance) that change ``stage``'s cached
    result, by name: what a cache key of that stage must contain from this section."""
    return {f.name: getattr(section, f.name) for f in fields(section) if stage in f.metadata.get("affects", ())}


def validate_section(name: str, section: Any) -> None:
    """Raise :class:`ProtocolError` naming the first field of ``section`` outside its range."""
    for f in fields(section):
        check_field(name, f, getattr(section, f.name))


def check_field(section: str, f: Any, value: Any, shown: str | None = None) -> None:
    """Raise :class:`ProtocolError` when ``value`` is outside the range declared on field ``f``
    (the message shows ``shown``, the value as typed, when given)."""
    allowed: Allowed | None = f.metadata.get("allowed")
    if allowed is not None and not allowed.check(value):
        raise ProtocolError(f"protocol field {section}.{f.name}={_show(value) if shown is None else shown} is "
                            f"out of range: allowed {allowed.describe()}")


def _show(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def _default(f) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()


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

    def validate(self) -> Protocol:
        """Check every field against its declared range (and ``md.steps >= md.sample_every``, so that
        a run samples past its first frame); raise :class:`ProtocolError` naming the field."""
        for name in SECTIONS:
            validate_section(name, getattr(self, name))
        if self.md.steps < self.md.sample_every:
            raise ProtocolError(f"protocol field md.steps={self.md.steps} is out of range: allowed an integer "
                                f">= md.sample_every ({self.md.sample_every}), so that the run samples past step 0")
        return self


PROTOCOLS: dict[str, Protocol] = {
    # the published PTO-test: 625 atoms, 100 ps per temperature, 300-1300 K in 100 K steps
    "paper": Protocol("paper", reduced=False),
    # about an hour per model on one GPU: 320 atoms, 20 ps per temperature
    "quick": Protocol("quick", reduced=True,
                      md=MDProtocol(supercell=4, steps=10_000, checkpoint_every=1000)),
    # deciding on a CPU (2 cores): sequential MD on the smallest cell the per-frame phase rule is
    # valid for (3^3 = 27 cells = min_cells_polar_order, reference_data/pto.toml), 300-1300 K in
    # 250 K steps; each temperature runs 0.8 ps and is extended (1.6, 3.2 ps) only while undecided;
    # Tc bisected once (125 K bracket) on heating and on cooling.  Cost: docs/drafts/issue-19.md
    "cpu": Protocol("cpu", reduced=True,
                    md=MDProtocol(supercell=3, temperatures_K=(300, 550, 800, 1050, 1300), steps=400,
                                  max_steps=1600, tc_resolution_K=125.0, sample_every=10, trajectory_every=10,
                                  checkpoint_every=100)),
    # CI on 2 CPU cores: 40 atoms, 0.3 ps, two temperatures (qualitative only)
    "smoke": Protocol("smoke", reduced=True,
                      md=MDProtocol(supercell=2, temperatures_K=(300, 1000), steps=150,
                                    sample_every=5, trajectory_every=5, checkpoint_every=50),
                      accuracy=AccuracyProtocol(every=10), inconclusive=InconclusivePolicy.WARN),
}


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``section.field=value`` (e.g. ``md.steps=200``, ``md.temperatures_K=300,600``).

    A value of the wrong type raises :class:`ProtocolError` naming the field and its allowed range.
    """
    key, sep, raw = text.partition("=")
    section, dot, fld = key.strip().partition(".")
    if not sep or not dot:
        raise ValueError(f"override must look like section.field=value, got {text!r}")
    cls = SECTIONS.get(section)
    spec = next((f for f in fields(cls) if f.name == fld), None) if cls is not None else None
    if spec is None:
        raise ValueError(f"unknown protocol field {key!r}")
    current = _default(spec)
    allowed: Allowed = spec.metadata["allowed"]
    try:
        if isinstance(current, tuple):
            value: Any = tuple(_convert(type(current[0]), v) for v in raw.split(",") if v.strip())
        else:
            value = _convert(type(current), raw)
    except ValueError:
        raise ProtocolError(f"protocol field {key.strip()}={raw} is not valid: allowed {allowed.describe()}") from None
    check_field(section, spec, value, raw)
    return section, fld, value


def _convert(kind: type, raw: str) -> Any:
    raw = raw.strip()
    if kind is bool:  # bool("false") is True: spell the words out
        words = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
        if raw.lower() not in words:
            raise ValueError(raw)
        return words[raw.lower()]
    if kind is int:
        x = float(raw)  # "1e4" is a valid step count; "2.5" is not
        if not x.is_integer():
            raise ValueError(raw)
        return int(x)
    return kind(raw)


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
    return replace(new, name=f"{protocol.name}+custom", reduced=True, overrides=tuple(overrides)).validate()


#: the parts of a recorded protocol that decide what a run computes and how its checks count
#: (``name``, ``reduced`` and ``overrides`` follow from them)
COMPARED_PARTS = ("static", "phonon", "md", "accuracy", "inconclusive")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def protocol_differences(recorded: Any, current: dict[str, Any]) -> list[str]:
    """The fields in which protocol ``current`` (:meth:`Protocol.to_dict`) differs from ``recorded``
    (a protocol as a results file or baseline holds it), as ``section.field: old -> new`` (``missing``
    where one side has no such field)."""
    import json

    def norm(p: Any) -> dict[str, Any]:
        p = json.loads(json.dumps(p if isinstance(p, dict) else {}, default=str))
        return _flat({k: p.get(k) for k in COMPARED_PARTS})

    old, new = norm(recorded), norm(current)
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k, "missing") != new.get(k, "missing"):
            show = [_show(tuple(v)) if isinstance(v, list) else str(v) for v in (old.get(k, "missing"),
                                                                                new.get(k, "missing"))]
            out.append(f"{k}: {show[0]} -> {show[1]}")
    return out
