"""``md.replicas``: R seeds per temperature make one row whose intervals come from the spread
between the replicas; the replica count is part of every MD cache key."""

from __future__ import annotations

from types import SimpleNamespace

from pto_checks.cache import Cache
from pto_checks.md.sweep import md_key, md_sweep
from pto_checks.md.task import sweep_tasks
from pto_checks.models.synthetic import make
from pto_checks.protocols import PROTOCOLS, apply_overrides

SMALL = ["md.temperatures_K=300,1000", "md.steps=150", "md.sample_every=5"]


def test_replicas_run_other_seeds_and_make_one_row(tmp_path):
    proto = apply_overrides(PROTOCOLS["smoke"], [*SMALL, "md.replicas=3"])
    tasks = sweep_tasks(proto, "nvt", "langevin")
    assert [(t.temperature_K, t.seed - proto.md.seed) for t in tasks] == [(300, 0), (300, 1), (300, 2),
                                                                         (1000, 0), (1000, 1), (1000, 2)]
    model = SimpleNamespace(name="md_polar", calculator=make("md_polar"), device="cpu",
                            identity=lambda: {"m": "md_polar"})
    rows = md_sweep(model, proto, Cache(tmp_path / "c"), "nvt", "langevin", progress=False)
    assert [r["T_K"] for r in rows] == [300, 1000]
    for r in rows:
        assert r["replicas"] == 3 and len(r["folders"]) == 3
        st = r["stats"]["series"]["Pz"]
        assert st["replicas"] == 3 and st["mean"] == r["Pz"]
        assert r["phase"] in ("tetragonal", "cubic", "undecided")


def test_replicas_are_in_the_cache_key():
    model = SimpleNamespace(identity=lambda: {"m": "md_polar"})
    one = apply_overrides(PROTOCOLS["smoke"], SMALL)
    three = apply_overrides(PROTOCOLS["smoke"], [*SMALL, "md.replicas=3"])
    task = sweep_tasks(one, "npt", "melchionna")[0]
    assert md_key(model, task, "ase", one)[0] != md_key(model, task, "ase", three)[0]
