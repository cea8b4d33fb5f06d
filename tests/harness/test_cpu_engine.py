"""The CPU engine choice (``--engine auto`` on a CPU follows the CPU engine table) and the
batched engine's memory bound on a CPU (the batch is chunked to what fits)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pto_checks import memory
from pto_checks.md import cpu_table, engines
from pto_checks.md.batched_engine import BatchedEngine, cpu_replica_cap
from pto_checks.md.cpu_table import CpuRow
from pto_checks.md.task import EngineName, MDTask
from pto_checks.protocols import PROTOCOLS

FAST = {"fam": (CpuRow(40, 1, 1.0, 1.5, 100.0), CpuRow(40, 8, 1.0, 3.0, 90.0),
                CpuRow(135, 1, 0.3, 0.2, 300.0), CpuRow(135, 8, 0.3, 0.6, 320.0))}


def _task(n: int) -> MDTask:
    p = PROTOCOLS["smoke"].md
    return MDTask("npt", "melchionna", 300.0, n, p.start_a, p.start_c, 20, 2.0, 1, p.ttime_fs, p.pfactor_ase,
                  p.mtk_tdamp_fs, p.mtk_pdamp_fs, p.friction_per_fs, 5, 4, 20)


def test_batched_faster_needs_a_win_at_every_replica_count():
    assert cpu_table.batched_faster("fam", 40, FAST) is True
    assert cpu_table.batched_faster("fam", 135, FAST) is False  # one replica alone is slower
    assert cpu_table.batched_faster("fam", 250, FAST) is False  # nearest measured: 135
    assert cpu_table.batched_faster("fam", 320, FAST) is None  # 135 is too far to decide
    assert cpu_table.batched_faster("fam", 60, FAST) is True  # nearest measured: 40
    assert cpu_table.batched_faster("other", 40, FAST) is None


def test_replica_memory_scales_with_atoms_and_covers_unmeasured_families():
    assert cpu_table.replica_mb("fam", 40, FAST) == pytest.approx(100.0)
    assert cpu_table.replica_mb("fam", 270, FAST) == pytest.approx(320.0 / 135 * 270)
    assert cpu_table.replica_mb("other", 40, FAST) == pytest.approx(2.5 * 40)  # the largest MB/atom measured
    assert cpu_table.replica_mb("other", 40, {}) == pytest.approx(cpu_table.FALLBACK_MB_PER_ATOM * 40)


def test_shipped_table_reads():
    table = cpu_table.load()
    assert "chgnet" in table and all(r.batched_mb_per_replica > 0 for r in table["chgnet"])
    # what it says today: CHGNet batched on 2x2x2 cells, ASE on the cpu protocol's 3x3x3
    assert cpu_table.batched_faster("chgnet", 40) is True and cpu_table.batched_faster("chgnet", 135) is False


@pytest.fixture
def fake_cpu(monkeypatch):
    monkeypatch.setattr(cpu_table, "load", lambda path=None: FAST)
    monkeypatch.setattr("pto_checks.models.batched.has_native_interface", lambda model: True)
    return SimpleNamespace(spec=SimpleNamespace(family="fam", name="m"), device="cpu")


def test_auto_on_cpu_follows_the_table_and_the_memory(fake_cpu, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: (8 * 2**30, "MemAvailable"))
    assert engines.choose_engine("auto", fake_cpu, _task(2)) is EngineName.BATCHED
    assert engines.choose_engine("auto", fake_cpu, _task(3)) is EngineName.ASE  # slower there
    monkeypatch.setattr(memory, "available_bytes", lambda: (50 * 2**20, "cgroup memory limit"))
    assert engines.choose_engine("auto", fake_cpu, _task(2)) is EngineName.ASE  # one replica does not fit
    unmeasured = SimpleNamespace(spec=SimpleNamespace(family="other", name="o"), device="cpu")
    assert engines.choose_engine("auto", unmeasured, _task(2)) is EngineName.ASE
    assert engines.choose_engine("batched", fake_cpu, _task(3)) is EngineName.BATCHED  # asked for: kept


def test_cpu_replica_cap_from_the_memory_left(fake_cpu, monkeypatch, capfd):
    monkeypatch.setattr(memory, "available_bytes", lambda: (1000 * 2**20, "cgroup memory limit"))
    assert cpu_replica_cap(fake_cpu, 40, "cpu", 8) == 5  # half of 1000 MB at 100 MB per replica
    assert "5 of 8 replicas per model call" in capfd.readouterr().err
    assert cpu_replica_cap(fake_cpu, 40, "cpu", 4) == 5
    assert cpu_replica_cap(fake_cpu, 40, "cuda", 8) is None  # on a GPU: halved on out-of-memory instead
    monkeypatch.setattr(memory, "available_bytes", lambda: (10 * 2**20, "MemAvailable"))
    assert cpu_replica_cap(fake_cpu, 40, "cpu", 8) == 1  # never below one
    monkeypatch.setattr(memory, "available_bytes", lambda: (None, "unknown"))
    assert cpu_replica_cap(fake_cpu, 40, "cpu", 8) is None


def test_batched_engine_on_cpu_calls_the_model_in_chunks_that_fit(monkeypatch, tmp_path):
    """Too little memory for the whole batch: each model call gets at most the cap, and the results
    are those of one call with every replica (chunking changes nothing but the memory)."""
    from pto_checks.models.synthetic import make

    calc = make("md_polar")
    tasks = [_task(2), *(MDTask(**{**_task(2).to_dict(), "temperature_K": t}) for t in (500.0, 700.0))]
    whole = BatchedEngine().run_many(tasks, calc, [tmp_path / f"w{i}" for i in range(3)])
    monkeypatch.setattr("pto_checks.md.cpu_table.replica_mb", lambda family, n_atoms, table=None: 100.0)
    monkeypatch.setattr(memory, "available_bytes", lambda: (400 * 2**20, "cgroup memory limit"))
    sizes = []
    real = BatchedEngine.potential

    def spy(self, model, numbers, masses, device):
        pot = real(self, model, numbers, masses, device)

        class Spy:
            name, device, native = pot.name, pot.device, getattr(pot, "native", False)

            def __call__(self, pos, cel):
                sizes.append(pos.shape[0])
                return pot(pos, cel)

        return Spy()

    monkeypatch.setattr(BatchedEngine, "potential", spy)
    chunked = BatchedEngine().run_many(tasks, calc, [tmp_path / f"c{i}" for i in range(3)])
    assert sizes and max(sizes) == 2  # half of 400 MB at 100 MB per replica
    for a, b in zip(whole, chunked, strict=True):
        assert [s["step"] for s in a["samples"]] == [s["step"] for s in b["samples"]]
        assert a["samples"][-1]["a"] == pytest.approx(b["samples"][-1]["a"], rel=1e-9)
