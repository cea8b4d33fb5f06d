"""The ``cpu`` protocol: sequential MD on the smallest cell the per-frame phase rule accepts,
300-1300 K, both ensembles, a bisected Tc on heating and cooling."""

from __future__ import annotations

import pytest

from pto_checks.md.task import sweep_tasks
from pto_checks.protocols import get_protocol
from pto_checks.reference import load_reference


def test_cpu_protocol_is_sequential_on_the_smallest_valid_cell():
    p = get_protocol("cpu").validate()
    md = p.md
    assert p.reduced and md.sequential and md.max_steps > md.steps and md.cooling
    assert md.temperatures_K[0] == 300 and md.temperatures_K[-1] == 1300
    assert list(md.temperatures_K) == sorted(md.temperatures_K)
    n_min = load_reference()["tolerances"]["phase"].get("min_cells_polar_order")
    if n_min is None:
        pytest.skip("the phase rule names no minimum cell")
    assert md.supercell**3 >= n_min > (md.supercell - 1) ** 3  # the smallest cell the rule accepts
    for ens, integ in (("npt", "melchionna"), ("nvt", "langevin")):
        tasks = sweep_tasks(p, ens, integ)
        assert [t.temperature_K for t in tasks] == list(map(float, md.temperatures_K))
        assert all(5 * t.supercell**3 == 135 for t in tasks)


def test_cpu_protocol_looks():
    """Three looks (0.8, 1.6, 3.2 ps): few looks keep the Bonferroni level per look mild."""
    from pto_checks.md.sequential import rule_for

    p = get_protocol("cpu")
    assert rule_for(p).looks == (400, 800, 1600)
    assert p.md.steps % p.md.sample_every == 0
