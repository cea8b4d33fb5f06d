"""Batched MD engine: its integrators follow ASE's, its device-built graphs give the calculators'
forces, it resumes exactly, drops a blown-up replica without disturbing the others, fits the
device by chunking, batches both ensembles of a sweep, and the engine-equivalence check fails on
sweeps that differ."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from ase.neighborlist import neighbor_list as ase_neighbor_list
from hypothesis import given, settings
from hypothesis import strategies as st

from pto_checks import stages, structures, verdicts
from pto_checks.cache import Cache
from pto_checks.md import ASEEngine, MDTask
from pto_checks.md.batched_engine import BatchedEngine, ChunkedCall
from pto_checks.models import load_model
from pto_checks.models.batched import CalculatorLoop, batched_potential
from pto_checks.models.synthetic import make
from pto_checks.neighbors import neighbor_list
from pto_checks.protocols import PROTOCOLS, apply_overrides, get_protocol


def _task(ensemble: str, temperature: float, steps: int = 120, seed: int = 5) -> MDTask:
    p = PROTOCOLS["smoke"].md
    integrator = "melchionna" if ensemble == "npt" else "langevin"
    return MDTask(ensemble, integrator, temperature, 2, p.start_a, p.start_c, steps, 2.0, seed, p.ttime_fs,
                  p.pfactor_ase, p.mtk_tdamp_fs, p.mtk_pdamp_fs, p.friction_per_fs, 5, 4, 20)


TASKS = [_task("npt", 300.0), _task("npt", 900.0), _task("nvt", 300.0), _task("nvt", 900.0)]
KEYS = ("a", "b", "c", "Px", "Py", "Pz", "T_K", "epot_eV")


def _close(a: list[dict], b: list[dict], rtol: float = 1e-9) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra["step"] == rb["step"]
        for k in KEYS:
            assert ra[k] == pytest.approx(rb[k], rel=rtol, abs=1e-9), (k, ra["step"])


# --- the integrators are ASE's ----------------------------------------------------------------

def test_batched_engine_follows_the_ase_engine_step_by_step(tmp_path):
    """Same model, same initial velocities, same Langevin noise: the batched Melchionna NPT and
    Langevin NVT follow ASE's trajectories to round-off (4 replicas, both ensembles, one batch)."""
    calc = make("md_polar")
    ref = [ASEEngine().run(t, calc, tmp_path / f"a{i}") for i, t in enumerate(TASKS)]
    new = BatchedEngine().run_many(TASKS, calc, [tmp_path / f"b{i}" for i in range(len(TASKS))])
    for r, n in zip(ref, new, strict=True):
        assert r["failure"] is None and n["failure"] is None
        _close(r["samples"], n["samples"])
        assert len(r["frames"]) == len(n["frames"])
        np.testing.assert_allclose(r["frames"][-1]["positions"], n["frames"][-1]["positions"], atol=1e-9)
        np.testing.assert_allclose(r["frames"][-1]["cell"], n["frames"][-1]["cell"], atol=1e-9)
        for fr, fn in zip(r["frames"], n["frames"], strict=True):  # the exported frames carry the same stress
            np.testing.assert_allclose(fn["stress_eV_A3"], fr["stress_eV_A3"], rtol=1e-7, atol=1e-10)


def test_npt_cell_moves_only_along_the_axes(tmp_path):
    """The diagonal mask: a, b, c relax independently, no shear appears."""
    res = BatchedEngine().run_many([_task("npt", 900.0, steps=60)], make("md_polar"), [tmp_path / "w"])[0]
    cell = res["frames"][-1]["cell"]
    assert np.count_nonzero(cell - np.diag(np.diag(cell))) == 0
    lens = np.diag(cell)
    assert not np.isclose(lens[0], lens[2])  # anisotropic: c/a is free to change


# --- device-built graphs give the calculators' answers --------------------------------------------

def _frame(n: int, seed: int = 0):
    atoms = structures.supercell(structures.tetragonal(a=3.9, c=4.15), n)
    atoms.rattle(0.08, seed=seed)
    atoms.positions[:3] += atoms.cell[0] - atoms.cell[2]  # unwrapped, as MD leaves them
    return atoms


def _compare(model, atoms, f_tol: float) -> str:
    calc = model.calculator
    atoms.calc = calc
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    pot = batched_potential(model, atoms.numbers, atoms.get_masses(), "cpu")
    pos = torch.as_tensor(np.stack([atoms.positions, atoms.positions]))
    cel = torch.as_tensor(np.stack([atoms.cell.array, atoms.cell.array]))
    E, F, S = pot(pos, cel)
    for k in range(2):
        assert float(E[k]) == pytest.approx(e, abs=1e-4 * len(atoms))
        np.testing.assert_allclose(F[k].numpy(), f, atol=f_tol)
        np.testing.assert_allclose(S[k].numpy(), s, atol=1e-5)
    return pot.name


@pytest.mark.parametrize("n", [1, 2])
def test_chgnet_device_graph_matches_the_calculator(n):
    """CHGNet's own forward on graphs built in torch (n=1: edges to the atom's own images)."""
    pytest.importorskip("chgnet", reason="bash scripts/install.sh chgnet")
    name = _compare(load_model("chgnet", "cpu"), _frame(n), f_tol=2e-4)
    assert name == "chgnet-device-graphs"


def test_sevennet_batch_matches_the_calculator():
    pytest.importorskip("sevenn", reason="bash scripts/install.sh sevennet")
    name = _compare(load_model("sevennet", "cpu"), _frame(2), f_tol=2e-4)
    assert name == "sevennet-device-graphs"


def test_mace_through_torchsim_matches_the_calculator(tmp_path):
    pytest.importorskip("mace", reason="bash scripts/install.sh mace")
    pytest.importorskip("torch_sim", reason="bash scripts/install.sh mace")
    from tests.harness.small_models import mace_model_file

    path = mace_model_file(tmp_path / "small.model")
    name = _compare(load_model(f"mace:{path}", "cpu"), _frame(2), f_tol=1e-8)
    assert name == "torchsim-mace"


def test_deepmd_frames_match_the_calculator(tmp_path):
    pytest.importorskip("deepmd", reason="bash scripts/install.sh deepmd")
    from tests.harness.small_models import deepmd_model_file

    path = deepmd_model_file(tmp_path)
    name = _compare(load_model(f"deepmd:{path}", "cpu"), _frame(2), f_tol=1e-8)
    assert name == "deepmd-frames"


def test_m3gnet_dgl_batch_matches_the_calculator():
    """Runs in the DGL environment (.ci/run: .venv-m3gnet), with the study's M3GNet weights."""
    pytest.importorskip("dgl", reason="bash scripts/install.sh m3gnet")
    pytest.importorskip("matgl", reason="bash scripts/install.sh m3gnet")
    from pto_checks.models import ModelUnavailable

    try:
        model = load_model("m3gnet", "cpu")
    except ModelUnavailable as exc:
        pytest.skip(str(exc))
    name = _compare(model, _frame(2), f_tol=2e-3)
    assert name == "m3gnet-device-graphs"


def test_other_models_use_the_calculator_loop():
    model = load_model("synthetic:good", "cpu")
    atoms = _frame(1)
    assert isinstance(batched_potential(model, atoms.numbers, atoms.get_masses(), "cpu"), CalculatorLoop)


@pytest.mark.parametrize("backend", ["vesin", "brute_force"])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12), cutoff=st.floats(2.0, 7.0), skew=st.booleans())
def test_neighbor_list_matches_ase(backend, seed, n, cutoff, skew):
    """Same (i, j, shift) set as ASE's neighbor list, for unwrapped positions, small and skewed cells
    (vesin, and the brute-force fallback used where vesin-torch cannot be installed)."""
    from unittest import mock

    from pto_checks import neighbors

    fallback = mock.patch.object(neighbors, "_compute", neighbors._brute_force)
    with fallback if backend == "brute_force" else contextlib.nullcontext():
        _neighbor_list_matches_ase(seed, n, cutoff, skew)


def _neighbor_list_matches_ase(seed, n, cutoff, skew):
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(3.0, 8.0, 3))
    if skew:
        cell[1, 0], cell[2, 0], cell[2, 1] = rng.uniform(-1.5, 1.5, 3)
    frac = rng.uniform(-1.5, 2.5, (n, 3))
    pos = frac @ cell
    from ase import Atoms

    i0, j0, s0 = ase_neighbor_list("ijS", Atoms("H" * n, positions=pos, cell=cell, pbc=True), cutoff)
    i1, j1, s1, vec = neighbor_list(torch.as_tensor(pos), torch.as_tensor(cell), cutoff)
    assert sorted(zip(i0.tolist(), j0.tolist(), map(tuple, s0.tolist()), strict=True)) == \
        sorted(zip(i1.tolist(), j1.tolist(), map(tuple, s1.tolist()), strict=True))
    np.testing.assert_allclose(vec.numpy(), pos[j1.numpy()] + s1.numpy() @ cell - pos[i1.numpy()], atol=1e-12)


# --- checkpoints, failures, memory ------------------------------------------------------------

class _Interrupt(Exception):
    pass


def test_interrupted_batch_resumes_to_the_same_result(tmp_path):
    calc = make("md_polar")
    ref = BatchedEngine().run_many(TASKS, calc, [tmp_path / f"r{i}" for i in range(4)])

    def stop_at_60(step, row, final):
        if step == 60:
            raise _Interrupt

    dirs = [tmp_path / f"w{i}" for i in range(4)]
    with pytest.raises(_Interrupt):
        BatchedEngine().run_many(TASKS, calc, dirs, progress=stop_at_60)
    assert all((d / "checkpoint.npz").is_file() for d in dirs)
    resumed = BatchedEngine().run_many(TASKS, calc, dirs)
    for r, n in zip(ref, resumed, strict=True):
        assert r["samples"] == n["samples"]
    # a replica resumed in another batch (alone) continues the same way
    alone = BatchedEngine().run_many([TASKS[3]], calc, [dirs[3]])
    assert alone[0]["samples"] == ref[3]["samples"]


class _NaNAfter:
    """The calculator loop, with non-finite forces for replica 1 from call ``after`` on."""

    def __init__(self, calc, after):
        self.calc, self.after, self.calls = calc, after, 0

    def __call__(self, model, numbers, masses, device):
        inner = CalculatorLoop(self.calc, numbers, device)
        outer = self

        class Pot:
            name, device, native = "nan-after", inner.device, False

            def __call__(self, pos, cel):
                outer.calls += 1
                e, f, s = inner(pos, cel)
                if outer.calls >= outer.after and pos.shape[0] == 4:
                    f[1] = float("nan")
                return e, f, s

        return Pot()


def test_a_blown_up_replica_is_dropped_and_the_others_go_on(tmp_path):
    calc = make("md_polar")
    clean = BatchedEngine().run_many(TASKS, calc, [tmp_path / f"c{i}" for i in range(4)])
    res = BatchedEngine(potential_factory=_NaNAfter(calc, 30)).run_many(
        TASKS, calc, [tmp_path / f"w{i}" for i in range(4)])
    # NaN forces -> NaN positions, on which the model raises one step later: recorded as the ASE engine does
    assert res[1]["failure"] is not None and "raised" in res[1]["failure"]["reason"]
    assert 0 < res[1]["failure"]["step"] < TASKS[1].steps
    for k in (0, 2, 3):
        assert res[k]["failure"] is None
        assert res[k]["samples"] == clean[k]["samples"]


def test_chunked_call_halves_on_out_of_memory():
    seen = []

    class Pot:
        name, device, native = "oom-above-2", torch.device("cpu"), True

        def __call__(self, pos, cel):
            seen.append(pos.shape[0])
            if pos.shape[0] > 2:
                raise torch.OutOfMemoryError("fake")
            return pos[:, 0, 0].clone(), pos.clone(), cel.clone()

    call = ChunkedCall(Pot())
    pos = torch.arange(7 * 2 * 3, dtype=torch.float64).reshape(7, 2, 3)
    cel = torch.eye(3, dtype=torch.float64).repeat(7, 1, 1)
    e, f, s = call(pos, cel)
    assert torch.equal(f, pos) and torch.equal(e, pos[:, 0, 0]) and s.shape == (7, 3, 3)
    assert call.max_replicas == 1 and seen[:2] == [7, 3]  # 7 -> 3 -> 1 replicas per call


def test_mtk_asks_for_the_ase_engine(tmp_path):
    task = MDTask(*(list(TASKS[0].to_dict().values())))
    task = type(task)(**{**task.to_dict(), "integrator": "mtk"})
    with pytest.raises(ValueError, match="--engine ase"):
        BatchedEngine().run_many([task], make("md_polar"), [tmp_path / "w"])


# --- the stage: both ensembles in one batch; the equivalence check ---------------------------

def test_npt_and_nvt_sweeps_run_as_one_batch(tmp_path, monkeypatch):
    model = load_model("synthetic:md_polar", "cpu")
    proto = apply_overrides(get_protocol("smoke"), ["md.steps=40"])
    calls = []
    orig = BatchedEngine.run_many

    def counting(self, tasks, *a, **k):
        calls.append([(t.ensemble, t.temperature_K) for t in tasks])
        return orig(self, tasks, *a, **k)

    monkeypatch.setattr(BatchedEngine, "run_many", counting)
    both = [("npt", "melchionna"), ("nvt", "langevin")]
    cache = Cache(tmp_path)
    npt = stages.md_sweep(model, proto, cache, "npt", "melchionna", engine="batched", progress=False, together=both)
    nvt = stages.md_sweep(model, proto, cache, "nvt", "langevin", engine="batched", progress=False, together=both)
    assert calls == [[("npt", 300.0), ("npt", 1000.0), ("nvt", 300.0), ("nvt", 1000.0)]]
    assert not any(r["cache_hit"] for r in npt) and all(r["cache_hit"] for r in nvt)


def test_engine_equivalence_passes_for_the_same_physics_and_fails_otherwise(tmp_path):
    proto = apply_overrides(get_protocol("smoke"), ["md.steps=60"])
    cache = Cache(tmp_path)
    polar = load_model("synthetic:md_polar", "cpu")
    cubic = load_model("synthetic:md_cubic", "cpu")
    ref = stages.md_sweep(polar, proto, cache, "npt", "melchionna", engine="ase", progress=False)
    same = stages.md_sweep(polar, proto, cache, "npt", "melchionna", engine="batched", progress=False)
    other = stages.md_sweep(cubic, proto, cache, "npt", "melchionna", engine="batched", progress=False)
    assert verdicts.engines_agree(ref, same, "npt").passed
    bad = verdicts.engines_agree(ref, other, "npt")
    assert not bad.passed and "DISAGREES" in bad.message and "phase" in bad.message


def test_sevennet_accelerator_choice(monkeypatch):
    """On a GPU the first installed tensor-product accelerator is turned on; never on a CPU."""
    from pto_checks.models import sevennet

    installed = {"flashTP_e3nn"}
    monkeypatch.setattr(sevennet.importlib.util, "find_spec", lambda m: object() if m in installed else None)
    assert sevennet.accelerator("cpu") == {}
    assert sevennet.accelerator("cuda") == {"enable_flash": True}
    assert sevennet.accelerator("cuda:0", "cueq") == {}
    assert sevennet.accelerator("cuda", "none") == {}
    installed.add("cuequivariance_torch")
    assert sevennet.accelerator("cuda") == {"enable_cueq": True}


def test_chunked_batch_equals_one_long_batch_and_a_decided_replica_leaves(tmp_path):
    """Sequential MD on the batched engine (``engines.run_until``): all four replicas to 40 steps,
    then two of them leave (decided) and the other two go on to 120 in two chunks: the continuing
    replicas equal the uninterrupted batch bit for bit, the ones that left stop at 40."""
    from pto_checks.md.engines import run_until

    calc = make("md_polar")
    ref = BatchedEngine().run_many(TASKS, calc, [tmp_path / f"r{i}" for i in range(4)])
    dirs = [tmp_path / f"w{i}" for i in range(4)]
    first = run_until("batched", TASKS, calc, dirs, [40] * 4)
    assert all(r["samples"][-1]["step"] == 40 for r in first)
    for n in (80, 120):
        out = run_until("batched", TASKS[1::2], calc, dirs[1::2], [n, n])
    for i, r in zip((1, 3), out, strict=True):
        assert r["samples"] == ref[i]["samples"]
    for i in (0, 2):
        assert first[i]["samples"] == ref[i]["samples"][: len(first[i]["samples"])]
