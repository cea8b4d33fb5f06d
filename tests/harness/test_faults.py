"""Fault suite (issue 10): what a careless user or an attacker does to the cache and the command
line, and what the harness must do about it.

* every cache read is validated: an unreadable, truncated or mismatched entry is moved aside
  (``*.corrupt-<time>``), a warning names the file, and the entry is recomputed;
* nothing the cache holds is unpickled on a read;
* cache keys come from the protocol dataclasses: every field either changes the key of the stages
  it declares, or is shown not to change the stored result;
* bad protocol fields, paths, devices and model files are refused before any work (exit status 4,
  one line naming the field or option, the value and what is allowed);
* ``pto-checks verify`` refuses a results file in which no check was executed.

Synthetic models only; each test takes seconds.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from pto_checks import stages
from pto_checks.accuracy.stage import accuracy_key
from pto_checks.cache import Cache, CacheWarning, CorruptEntry
from pto_checks.models import load_model
from pto_checks.protocols import PROTOCOLS, SECTIONS, STAGES, apply_overrides, get_protocol

ROOT = Path(__file__).resolve().parents[2]


def _corrupt_folders(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if ".corrupt-" in p.name)


def _compute_counter():
    calls = []

    def compute(folder: Path):
        calls.append(1)
        (folder / "x.txt").write_text("hi")
        return {"v": len(calls)}

    return calls, compute


# --- every cache read validated -----------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"{\"data\": {\"v\"", b"\x00\xff garbage", b"[1, 2]",
                                     b"{\"meta\": {}}", b"{\"data\": 5}"],
                         ids=["empty", "truncated", "binary", "not-an-object", "no-data", "data-not-object"])
def test_corrupt_meta_json_is_moved_aside_and_recomputed(tmp_path, content):
    cache = Cache(tmp_path)
    calls, compute = _compute_counter()
    folder, _, _ = cache.get_or_compute("s", "k", compute)
    (folder / "meta.json").write_bytes(content)
    with pytest.warns(CacheWarning, match=r"meta\.json"):
        folder, data, hit = cache.get_or_compute("s", "k", compute)
    assert not hit and len(calls) == 2 and data == {"v": 2}
    assert [p.name.split(".corrupt-")[0] for p in _corrupt_folders(tmp_path / "s")] == ["k"]
    assert cache.get_or_compute("s", "k", compute)[2] is True  # the recomputed entry is a hit again


def test_entry_of_another_key_is_recomputed(tmp_path):
    """An entry copied (or planted) under another key is a mismatch, not a hit."""
    cache = Cache(tmp_path)
    calls, compute = _compute_counter()
    cache.get_or_compute("s", "a", compute)
    shutil.copytree(cache.entry("s", "a"), cache.entry("s", "b"))
    with pytest.warns(CacheWarning, match=r"written for s/a, not s/b"):
        _, _, hit = cache.get_or_compute("s", "b", compute)
    assert not hit and len(calls) == 2


def test_entry_with_other_inputs_is_recomputed(tmp_path):
    """The stored inputs (what the key was derived from) must be the ones asked for."""
    cache = Cache(tmp_path)
    calls, compute = _compute_counter()
    cache.get_or_compute("s", "k", compute, inputs={"T_K": 300})
    assert cache.get_or_compute("s", "k", compute, inputs={"T_K": 300})[2] is True
    with pytest.warns(CacheWarning, match=r"stored inputs differ"):
        _, _, hit = cache.get_or_compute("s", "k", compute, inputs={"T_K": 600})
    assert not hit and len(calls) == 2


def test_validator_rejection_moves_the_entry_aside(tmp_path):
    cache = Cache(tmp_path)
    calls, compute = _compute_counter()

    def validate(folder: Path, data):
        if (folder / "x.txt").read_text() != "hi":
            raise CorruptEntry(folder / "x.txt", "wrong content")

    cache.get_or_compute("s", "k", compute, validate=validate)
    (cache.entry("s", "k") / "x.txt").write_text("tampered")
    with pytest.warns(CacheWarning, match=r"x\.txt: wrong content"):
        _, _, hit = cache.get_or_compute("s", "k", compute, validate=validate)
    assert not hit and len(calls) == 2


def test_corrupt_partial_work_folder_can_be_discarded(tmp_path):
    """The hook the MD stage calls when its checkpoint is unusable: the partial folder is moved
    aside with a warning naming the file, and the work starts in a fresh, empty folder."""
    cache = Cache(tmp_path)
    with cache.claim("md", "k", resumable=True) as claim:
        (claim.work / "checkpoint.npz").write_bytes(b"truncated")
    with cache.claim("md", "k", resumable=True) as claim:
        assert (claim.work / "checkpoint.npz").is_file()  # resumable: kept across claims
        with pytest.warns(CacheWarning, match=r"checkpoint\.npz: unreadable"):
            moved = claim.discard_work(f"{claim.work / 'checkpoint.npz'}: unreadable")
        assert list(claim.work.iterdir()) == [] and (moved / "checkpoint.npz").is_file()
        claim.commit({"ok": True})
    assert cache.get_or_compute("md", "k", lambda f: {})[1] == {"ok": True}


@pytest.fixture(scope="module")
def good_model():
    return load_model("synthetic:good", "cpu")


def _phonon_protocol():
    return apply_overrides(get_protocol("smoke"), ["phonon.supercell=1,1,1", "phonon.band_points=5",
                                                   "phonon.mesh=2,2,2", "static.fmax=0.01"])


def _files(name: str) -> list:
    return [pytest.param(name, mode, id=f"{name}-{mode}") for mode in ("truncated", "garbage", "missing")]


def _damage(path: Path, mode: str) -> None:
    if mode == "missing":
        path.unlink()
    elif mode == "truncated":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    else:
        path.write_bytes(b"\x00" * 64)


@pytest.mark.parametrize(("name", "mode"), _files("tetragonal.extxyz") + _files("cubic.extxyz"))
def test_corrupt_ground_state_file_is_recomputed(tmp_path, good_model, name, mode):
    proto = _phonon_protocol()
    cache = Cache(tmp_path)
    folder, ref = stages.ground_state(good_model, proto, cache)
    _damage(folder / name, mode)
    with pytest.warns(CacheWarning, match=name.replace(".", r"\.")):
        folder, data = stages.ground_state(good_model, proto, cache)
    assert data["cache_hit"] is False and data["c_over_a"] == pytest.approx(ref["c_over_a"])
    assert len(_corrupt_folders(tmp_path / "ground_state")) == 1
    stages.phonon_stage(good_model, proto, cache, folder / "tetragonal.extxyz")  # the relaxed cell reads


@pytest.mark.parametrize(("name", "mode"), _files("bands.npz") + _files("band.yaml"))
def test_corrupt_phonon_file_is_recomputed(tmp_path, good_model, name, mode):
    proto = _phonon_protocol()
    cache = Cache(tmp_path)
    gs, _ = stages.ground_state(good_model, proto, cache)
    folder, ref, *_ = stages.phonon_stage(good_model, proto, cache, gs / "tetragonal.extxyz")
    _damage(folder / name, mode)
    with pytest.warns(CacheWarning, match=name.replace(".", r"\.")):
        folder, data, res, _ = stages.phonon_stage(good_model, proto, cache, gs / "tetragonal.extxyz")
    assert data["cache_hit"] is False and data["f_min_thz"] == pytest.approx(ref["f_min_thz"])
    assert res.band_freq.size and len(_corrupt_folders(tmp_path / "phonons")) == 1


def _md_protocol(*extra: str):
    return apply_overrides(get_protocol("smoke"), ["md.temperatures_K=300", "md.steps=40", "md.sample_every=5",
                                                   "md.trajectory_every=2", "md.checkpoint_every=20", *extra])


@pytest.fixture(scope="module")
def md_model():
    return load_model("synthetic:md_polar", "cpu")


def test_truncated_md_samples_are_recomputed(tmp_path, md_model):
    proto = _md_protocol()
    cache = Cache(tmp_path)
    ref = stages.md_sweep(md_model, proto, cache, "nvt", "langevin", progress=False)[0]
    samples = Path(ref["folder"]) / "samples.csv"
    samples.write_text("".join(samples.read_text().splitlines(keepends=True)[:4]))
    with pytest.warns(CacheWarning, match=r"samples\.csv"):
        row = stages.md_sweep(md_model, proto, cache, "nvt", "langevin", progress=False)[0]
    assert row["cache_hit"] is False and row["Pz"] == ref["Pz"] and row["n_samples"] == ref["n_samples"]


# --- nothing in the cache is unpickled ----------------------------------------------------------

class _Planted:
    """Unpickling this creates a marker file: proof that something loaded a planted pickle."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_planted_pickles_are_never_loaded(tmp_path, good_model, md_model):
    """An attacker with write access to the cache plants pickles in finished entries (a
    checkpoint.pkl, an object array in bands.npz): reads never unpickle them; the npz is rejected
    as corrupt and recomputed."""
    marker = tmp_path / "PWNED"
    cache = Cache(tmp_path / "cache")
    proto = _phonon_protocol()
    gs, _ = stages.ground_state(good_model, proto, cache)
    ph, *_ = stages.phonon_stage(good_model, proto, cache, gs / "tetragonal.extxyz")
    md_proto = _md_protocol()
    md_folder = Path(stages.md_sweep(md_model, md_proto, cache, "nvt", "langevin", progress=False)[0]["folder"])
    for folder in (gs, ph, md_folder):
        (folder / "checkpoint.pkl").write_bytes(pickle.dumps(_Planted(str(marker))))
    z = dict(np.load(ph / "bands.npz"))
    z["labels"] = np.array([_Planted(str(marker))], dtype=object)
    np.savez(ph / "bands.npz", **z)
    assert stages.ground_state(good_model, proto, cache)[1]["cache_hit"] is True
    with pytest.warns(CacheWarning, match=r"bands\.npz"):
        assert stages.phonon_stage(good_model, proto, cache, gs / "tetragonal.extxyz")[1]["cache_hit"] is False
    assert stages.md_sweep(md_model, md_proto, cache, "nvt", "langevin", progress=False)[0]["cache_hit"] is True
    assert not marker.exists()


# --- keys from the protocol dataclasses ---------------------------------------------------------

class _Model:
    name = "stub"

    def identity(self):
        return {"name": "stub", "fingerprint": "0" * 8}


def _changed(value, allowed):
    """A different value of a field, inside its allowed range."""
    if allowed.choices is not None and isinstance(value, tuple):
        return value[:-1]
    if allowed.choices is not None:
        return next(c for c in allowed.choices if c != value)
    if isinstance(value, tuple):
        return (value[0] + 1,) + value[1:]
    if isinstance(value, int):
        return value + 1 if allowed.hi is None or value + 1 <= allowed.hi else value - 1
    return value * 0.9


def _keys(proto) -> dict[str, set[str]]:
    from pto_checks import structures

    atoms = structures.tetragonal()
    out = {"ground_state": {stages.ground_state_key(_Model(), proto)[0]},
           "phonons": {stages.phonon_key(_Model(), proto, atoms)[0]}, "md": set(),
           "accuracy": {accuracy_key(_Model(), t, proto.accuracy.every, proto.accuracy.offset)
                        for t in proto.accuracy.temperatures_K}}
    for ens, integ in (("npt", "melchionna"), ("npt", "mtk"), ("nvt", "langevin")):
        for task in stages.md_tasks(proto, ens, integ):
            out["md"].add(stages.md_key(_Model(), task, "ase", proto)[0])
    return out


#: fields that change no key, and the test that shows they do not change the stored result
SHOWN_UNCHANGED = {
    "md.production_fraction": "test_production_fraction_is_applied_on_read",
    "md.npt_integrator": "test_every_protocol_field_is_keyed_or_shown_not_to_change_the_result",
    "md.temperatures_K": "test_every_protocol_field_is_keyed_or_shown_not_to_change_the_result",
    "accuracy.temperatures_K": "test_every_protocol_field_is_keyed_or_shown_not_to_change_the_result",
    "md.tc_resolution_K": "test_sequential.py::test_cache_key_by_rule_not_by_length",
    "md.cooling": "test_sequential.py::test_cache_key_by_rule_not_by_length",
}


def test_every_protocol_field_is_keyed_or_shown_not_to_change_the_result():
    """For each protocol field: changing it misses the cache of every stage it declares, or it is
    declared as changing no stored result (with the reason) and a test shows so."""
    base = PROTOCOLS["smoke"]
    base_keys = _keys(base)
    seen = set()
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            name = f"{section}.{f.name}"
            seen.add(name)
            affects = f.metadata.get("affects")
            assert affects is not None and "allowed" in f.metadata, f"{name}: declare it with protocols._f"
            assert set(affects) <= set(STAGES)
            new_value = _changed(getattr(base, section).__getattribute__(f.name), f.metadata["allowed"])
            if name == "md.max_steps":  # cross-field rule: 0 (fixed length) or >= md.steps (sequential)
                new_value = base.md.steps * 8
            new = base.with_overrides(**{section: {f.name: new_value}}).validate()
            keys = _keys(new)
            for stage in STAGES:
                if stage in affects:
                    assert keys[stage].isdisjoint(base_keys[stage]), f"{name} does not change the {stage} key"
                else:
                    assert keys[stage] == base_keys[stage] or name == f"{stage}.temperatures_K", \
                        f"{name} changes the {stage} key but does not declare it"
            if not affects:
                assert f.metadata["why"] and name in SHOWN_UNCHANGED, f"{name}: keyed nowhere, say why and show it"
    assert seen >= set(SHOWN_UNCHANGED)
    # md.npt_integrator is the default choice only: the tasks (what runs) do not depend on it
    other = base.with_overrides(md={"npt_integrator": "mtk"})
    for ens, integ in (("npt", "melchionna"), ("npt", "mtk"), ("nvt", "langevin")):
        assert stages.md_tasks(other, ens, integ) == stages.md_tasks(base, ens, integ)
    # md.temperatures_K: one entry per temperature; a temperature in both lists keeps its key
    more = base.with_overrides(md={"temperatures_K": (300, 650, 1000)})
    t_base = {t.temperature_K: stages.md_key(_Model(), t, "ase", base)[0] for t in stages.md_tasks(base, "npt", "mtk")}
    t_more = {t.temperature_K: stages.md_key(_Model(), t, "ase", more)[0] for t in stages.md_tasks(more, "npt", "mtk")}
    assert t_more[300.0] == t_base[300.0] and t_more[1000.0] == t_base[1000.0] and t_more[650.0] not in t_base.values()
    # accuracy.temperatures_K: likewise, one entry per temperature
    fewer = base.with_overrides(accuracy={"temperatures_K": (300, 900)})
    assert _keys(fewer)["accuracy"] < _keys(base)["accuracy"] and len(_keys(fewer)["accuracy"]) == 2


def test_production_fraction_is_applied_on_read(tmp_path, md_model):
    """production_fraction is not in the MD key: the averages are recomputed from the stored
    samples on every read, so a changed fraction gives what a fresh run with it gives."""
    cache = Cache(tmp_path / "shared")
    stages.md_sweep(md_model, _md_protocol(), cache, "nvt", "langevin", progress=False)
    for frac in ("0.2", "1.0", "0.5"):
        proto = _md_protocol(f"md.production_fraction={frac}")
        reread = stages.md_sweep(md_model, proto, cache, "nvt", "langevin", progress=False)[0]
        fresh = stages.md_sweep(md_model, proto, Cache(tmp_path / frac), "nvt", "langevin", progress=False)[0]
        assert reread["cache_hit"] is True and fresh["cache_hit"] is False
        drop = ("cache_hit", "folder")
        same = [json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True, default=str)
                for r in (reread, fresh)]  # as JSON: NaN == NaN (short series have no blocking error)
        assert same[0] == same[1]


# --- start-up validation ------------------------------------------------------------------------

BAD_FIELDS = [
    ("md.sample_every=0", "md.sample_every", ">= 1"),
    ("md.steps=0", "md.steps", ">= 1"),
    ("md.steps=-10", "md.steps", ">= 1"),
    ("md.steps=abc", "md.steps", "integer"),
    ("md.steps=2.5", "md.steps", "integer"),
    ("md.temperatures_K=-5", "md.temperatures_K", "> 0"),
    ("md.temperatures_K=0", "md.temperatures_K", "> 0"),
    ("md.temperatures_K=", "md.temperatures_K", "at least 1"),
    ("md.supercell=0", "md.supercell", ">= 1"),
    ("md.timestep_fs=0", "md.timestep_fs", "> 0"),
    ("md.timestep_fs=nan", "md.timestep_fs", "> 0"),
    ("md.production_fraction=0", "md.production_fraction", "> 0"),
    ("md.production_fraction=1.5", "md.production_fraction", "<= 1"),
    ("md.friction_per_fs=-1", "md.friction_per_fs", "> 0"),
    ("md.seed=-1", "md.seed", ">= 0"),
    ("md.npt_integrator=verlet", "md.npt_integrator", "melchionna"),
    ("md.steps=3", "md.steps", "md.sample_every"),  # smoke samples every 5 steps
    ("phonon.supercell=0", "phonon.supercell", "3 comma-separated"),
    ("phonon.supercell=2,2", "phonon.supercell", "3 comma-separated"),
    ("phonon.displacement=0", "phonon.displacement", "> 0"),
    ("phonon.mesh=0,8,8", "phonon.mesh", ">= 1"),
    ("phonon.band_points=1", "phonon.band_points", ">= 2"),
    ("static.fmax=0", "static.fmax", "> 0"),
    ("static.fmax=-1e-3", "static.fmax", "> 0"),
    ("static.max_steps=0", "static.max_steps", ">= 1"),
    ("accuracy.every=0", "accuracy.every", ">= 1"),
    ("accuracy.every=2.5", "accuracy.every", "integer"),
    ("accuracy.offset=-1", "accuracy.offset", ">= 0"),
    ("accuracy.temperatures_K=600", "accuracy.temperatures_K", "one of 300, 450, 900"),
]


@pytest.mark.parametrize(("override", "field", "allowed"), BAD_FIELDS, ids=[b[0] for b in BAD_FIELDS])
def test_bad_protocol_field_is_refused_naming_field_value_and_range(override, field, allowed):
    with pytest.raises(ValueError) as exc:
        apply_overrides(get_protocol("smoke"), [override])
    msg = str(exc.value)
    value = override.partition("=")[2]
    assert f"{field}={value}" in msg and "allowed" in msg and allowed in msg and "\n" not in msg, msg


def test_named_protocols_are_valid():
    for proto in PROTOCOLS.values():
        proto.validate()


def _bad_results(path: Path) -> Path:
    path.write_text('{"schema_version": 1, "models": ')
    return path


def _option_cases(tmp: Path) -> list[tuple[list[str], str]]:
    afile = tmp / "a_file"
    afile.write_text("x")
    bad_family = tmp / "models.toml"
    bad_family.write_text('[models.mine]\nfamily = "nequip"\nfunctional = "PBE"\n')
    missing_weights = tmp / "missing.toml"
    missing_weights.write_text('[models.mine]\nfamily = "mace"\n[models.mine.options]\npath = "none.model"\n')
    wrong_schema = tmp / "old.json"
    wrong_schema.write_text('{"schema_version": 0, "models": {}}')
    return [
        (["--protocol-set", "md.sample_every=0"], "md.sample_every=0"),
        (["--protocol-set", "md.steps=abc"], "md.steps=abc"),
        ([f"--report={afile}/out"], "--report"),
        ([f"--report={afile}"], "--report"),
        ([f"--report={tmp}/out", f"--compare={tmp}/nonexistent.json"], "--compare"),
        ([f"--report={tmp}/out", f"--compare={_bad_results(tmp / 'bad_compare.json')}"], "--compare"),
        ([f"--baseline={_bad_results(tmp / 'bad_baseline.json')}"], "--baseline"),
        ([f"--baseline={wrong_schema}"], "schema_version"),
        ([f"--model-file={bad_family}", "--model=mine"], "nequip"),
        ([f"--model-file={missing_weights}", "--model=mine"], "none.model"),
        (["--model=mace:/nonexistent/x.model"], "/nonexistent/x.model"),
    ]


def test_bad_options_are_refused_before_any_work(pytester, tmp_path):
    """Exit status 4 (pytest's usage error) and one line naming the option and the value; the test
    file is never run (its test would write a marker)."""
    marker = tmp_path / "RAN"
    pytester.makepyfile(test_x=f"def test_x():\n    open({str(marker)!r}, 'w').close()\n")
    failures = []
    for args, needle in _option_cases(tmp_path):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=synthetic:good",
                                               f"--pto-cache={tmp_path / 'cache'}", *args, timeout=120)
        err = [line for line in result.errlines if line.strip()]
        ok = (result.ret == 4 and not marker.exists() and len(err) == 1 and needle in err[0]
              and "Traceback" not in "\n".join(result.errlines + result.outlines))
        if not ok:
            failures.append(f"{args}: exit {result.ret}, ran={marker.exists()}, stderr={err[-3:]}")
        marker.unlink(missing_ok=True)
    assert not failures, "\n".join(failures)


def test_cuda_on_a_machine_without_one_is_one_line(pytester, tmp_path):
    try:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    except ImportError:
        pass
    pytester.makepyfile(test_x="def test_x(model):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=synthetic:good", "--device=cuda",
                                           f"--pto-cache={tmp_path / 'cache'}", timeout=120)
    err = [line for line in result.errlines if line.strip()]
    assert result.ret == 4 and len(err) == 1 and "--device cuda" in err[0] and "--device cpu" in err[0], err
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


# --- verify -------------------------------------------------------------------------------------

def test_verify_fails_when_no_check_was_executed(tmp_path, capsys):
    from pto_checks.cli import main
    from pto_checks.results import Results

    res = Results()
    res.check("m", "test_static.py::test_a", "skip", message="no model")
    res.check("m", "test_static.py::test_b", "skip", message="no model")
    res.write(tmp_path / "results.json")
    assert main(["verify", str(tmp_path / "results.json")]) == 1
    assert "no check was executed (all 2 skipped)" in capsys.readouterr().err
    res.check("m", "test_static.py::test_c", "fail", message="c/a off")
    res.write(tmp_path / "results.json")
    assert main(["verify", str(tmp_path / "results.json")]) == 0



# --- MD checkpoints: data, matched to their task, never unpickled ---------------------------------

def _md_entry(tmp_path: Path, model, *extra: str) -> tuple[dict, Path]:
    """A finished MD entry (300 K unless ``extra`` says otherwise) in a cache of its own: its row and folder."""
    row = stages.md_sweep(model, _md_protocol(*extra), Cache(tmp_path), "nvt", "langevin", progress=False)[0]
    return row, Path(row["folder"])


def _same_numbers(a: dict, b: dict) -> bool:
    keep = ("T_K", "a", "c", "Pz", "P_abs", "n_samples", "failure", "T_measured")
    return json.dumps({k: a.get(k) for k in keep}) == json.dumps({k: b.get(k) for k in keep})


@pytest.mark.parametrize("other", ["md.temperatures_K=600", "md.seed=7"], ids=["600K", "other-seed"])
def test_checkpoint_of_another_task_is_not_resumed(tmp_path, md_model, other):
    """A finished checkpoint of another task (600 K, or another seed) planted in the 300 K entry's
    ``.partial`` folder: resuming it would commit the other task's numbers as 300 K's (issue 10,
    item 1).  It is refused with a warning naming the file and what differs; the run starts afresh."""
    ref, ref_folder = _md_entry(tmp_path / "ref", md_model)
    _, foreign = _md_entry(tmp_path / "other", md_model, other)
    cache = Cache(tmp_path / "victim")
    partial = cache.root / "md" / f"{ref_folder.name}.partial"
    partial.mkdir(parents=True)
    for f in foreign.glob("checkpoint.*"):
        shutil.copy(f, partial / f.name)
    assert list(partial.iterdir()), "the other run left no checkpoint to plant"
    field = "temperature_K" if "temperatures" in other else "seed"
    with pytest.warns(CacheWarning, match=rf"checkpoint\.npz: written for another task \({field} "):
        row = stages.md_sweep(md_model, _md_protocol(), cache, "nvt", "langevin", progress=False)[0]
    assert row["cache_hit"] is False and _same_numbers(row, ref), (row["T_measured"], ref["T_measured"])
    assert len(_corrupt_folders(cache.root / "md")) == 1  # the planted folder, moved aside


def test_planted_pickle_checkpoint_is_never_unpickled(tmp_path, md_model):
    """A ``checkpoint.pkl`` whose object runs code when unpickled, planted in a ``.partial`` folder
    (a writable cache folder): never loaded (no marker file), discarded with a warning, and the run
    starts afresh with the right numbers (issue 10, item 2)."""
    marker = tmp_path / "PWNED"
    ref, ref_folder = _md_entry(tmp_path / "ref", md_model)
    cache = Cache(tmp_path / "victim")
    partial = cache.root / "md" / f"{ref_folder.name}.partial"
    partial.mkdir(parents=True)
    (partial / "checkpoint.pkl").write_bytes(pickle.dumps(_Planted(str(marker))))
    with pytest.warns(CacheWarning, match=r"checkpoint\.pkl: a pickled checkpoint .* not loaded"):
        row = stages.md_sweep(md_model, _md_protocol(), cache, "nvt", "langevin", progress=False)[0]
    assert not marker.exists()
    assert row["cache_hit"] is False and _same_numbers(row, ref)


@pytest.mark.parametrize("mode", ["truncated", "garbage", "empty"])
def test_damaged_checkpoint_is_discarded_and_the_run_restarts(tmp_path, md_model, mode):
    """A truncated, garbage or empty checkpoint of the right entry (a disk filled up, a copy cut
    short): discarded with a warning naming the file, and the run restarts from step 0."""
    ref, ref_folder = _md_entry(tmp_path / "ref", md_model)
    cache = Cache(tmp_path / "victim")
    partial = cache.root / "md" / f"{ref_folder.name}.partial"
    partial.mkdir(parents=True)
    if mode == "truncated":
        good = next(ref_folder.glob("checkpoint.*")).read_bytes()
        damaged = good[: len(good) // 2]
    else:
        damaged = {"garbage": b"\x00\xffnot an npz" * 10, "empty": b""}[mode]
    (partial / "checkpoint.npz").write_bytes(damaged)
    (partial / "checkpoint.pkl").write_bytes(damaged)  # what earlier versions read (and unpickled)
    with pytest.warns(CacheWarning, match=r"checkpoint\.(npz|pkl)"):
        row = stages.md_sweep(md_model, _md_protocol(), cache, "nvt", "langevin", progress=False)[0]
    assert row["cache_hit"] is False and _same_numbers(row, ref)


def test_checkpoint_holds_no_pickle(tmp_path, md_model):
    """What a checkpoint is: an npz that loads with ``allow_pickle=False`` and names its task and key."""
    from pto_checks.md.observe import read_checkpoint

    _, folder = _md_entry(tmp_path, md_model)
    with np.load(folder / "checkpoint.npz", allow_pickle=False) as z:
        assert all(z[k].dtype.kind in "biufcU" for k in z.files)
    d = read_checkpoint(folder / "checkpoint.npz")
    assert d["task"]["temperature_K"] == 300.0 and d["key"] == folder.name and d["engine"] == "ase"


# --- kinetic-temperature bound --------------------------------------------------------------------

def _hot_atoms(task, t_kin_K: float):
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from pto_checks.md.task import initial_atoms

    atoms = initial_atoms(task)
    atoms.calc = load_model("synthetic:md_polar", "cpu").calculator
    MaxwellBoltzmannDistribution(atoms, temperature_K=300.0, rng=np.random.default_rng(1))
    atoms.set_momenta(atoms.get_momenta() * np.sqrt(t_kin_K / atoms.get_temperature()))
    return atoms


def test_a_1e9_K_frame_is_a_blowup_not_a_sample(tmp_path):
    """A frame at 1e9 K (a model that pumps energy in) is not accepted as a sample: the run stops
    with a failure naming the kinetic temperature, as for the other blow-ups."""
    from pto_checks.md.observe import Recorder
    from pto_checks.md.task import sweep_tasks
    from pto_checks.reference import tolerance

    task = sweep_tasks(_md_protocol(), "nvt", "langevin")[0]
    rec = Recorder(task, tmp_path, "ase")
    limits = tolerance("melting")
    assert rec.observe(_hot_atoms(task, 300.0), 0, limits) is not None
    assert rec.observe(_hot_atoms(task, 1e9), 5, limits) is None
    assert len(rec.samples) == 1 and "kinetic temperature" in rec.failure["reason"] and rec.failure["step"] == 5


def test_sustained_heating_is_a_blowup_and_its_stretch_is_not_kept(tmp_path):
    """Above ``kinetic_T_factor`` times the target for ``kinetic_T_samples`` samples in a row: a
    blow-up, and the frames of that stretch are dropped from the samples.  A single hot frame (a
    fluctuation) and frames just below the bound are kept."""
    from pto_checks.md.observe import Recorder
    from pto_checks.md.task import sweep_tasks
    from pto_checks.reference import tolerance

    task = sweep_tasks(_md_protocol(), "nvt", "langevin")[0]
    limits = tolerance("melting")
    f, n = limits["kinetic_T_factor"], limits["kinetic_T_samples"]
    rec = Recorder(task, tmp_path / "a", "ase")
    temps = [300.0, 1.2 * f * 300, 300.0] + [0.95 * f * 300] * (n + 2) + [1.2 * f * 300] * n
    for i, t_kin in enumerate(temps):
        if rec.observe(_hot_atoms(task, t_kin), 5 * i, limits) is None:
            break
    assert rec.failure is not None and "in a row" in rec.failure["reason"]
    assert rec.failure["step"] == 5 * (len(temps) - 1)
    assert len(rec.samples) == len(temps) - n  # the hot stretch is gone, the lone hot frame kept


def test_heating_model_fails_the_run_on_kinetic_temperature(tmp_path):
    """End to end: a model that heats the system stops the run with a kinetic-temperature failure
    (before this bound, its frames were sampled at any temperature)."""
    from pto_checks.md import ASEEngine
    from pto_checks.md.task import sweep_tasks

    task = sweep_tasks(_md_protocol(), "nvt", "langevin")[0]
    res = ASEEngine().run(task, load_model("synthetic:heating", "cpu"), tmp_path)
    assert res["failure"] is not None and "kinetic temperature" in res["failure"]["reason"], res["failure"]
    limits_factor = 10.0
    assert all(s["T_K"] < limits_factor * task.temperature_K for s in res["samples"])
