"""A CI gate that cannot be fooled or silently switched off, a cache that never follows a link, and a
report folder that never destroys a user's files: each fault is tried the way a careless user or an
attacker would, and the harness must refuse it, fail the gate, or keep the files.

Synthetic models only; the gate runs use the static checks (seconds each).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pto_checks.cache import Cache, CacheWarning
from pto_checks.cli import main
from pto_checks.models import load_model
from pto_checks.protocols import ProtocolError, apply_overrides, get_protocol

ROOT = Path(__file__).resolve().parents[2]
CHECK_FILES = ("test_static.py", "test_regression.py")
LATTICE = "test_static.py::test_lattice_a_vs_experiment"
REGRESSION = "test_regression.py::test_ground_state_unchanged_vs_baseline"


def _model_file(folder: Path, variant: str, name: str = "my-model") -> Path:
    """A ``--model-file`` naming the synthetic ``variant`` as the model ``name``."""
    f = folder / f"model_{variant}_{abs(hash(name)) % 10**6}.toml"
    f.write_text(f'[models.{json.dumps(name)}]\nfamily = "ase"\nfunctional = "PBEsol"\n'
                 f'[models.{json.dumps(name)}.options]\nfactory = "pto_checks.models.synthetic:make"\n'
                 f'kwargs = {{ variant = "{variant}" }}\n')
    return f


@pytest.fixture
def checks(pytester, check_files):
    check_files(*CHECK_FILES)

    def run(*args: str):
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--pto-cache={pytester.path / 'cache'}",
                                             *args, timeout=300)

    return run


def _one_error_line(result) -> list[str]:
    return [line for line in result.errlines if line.strip()]


# --- the gate under tampering: passes a good model, fails the compressed one ----------------------

def _tamper(baseline: dict, how: str) -> dict:
    data = json.loads(json.dumps(baseline))
    entry = data["models"]["my-model"]
    gs = entry["quantities"]["ground_state"]
    if "nan" in how:
        for k in ("a", "c", "c_over_a", "delta_e"):
            gs[k]["value"] = float("nan")
    if "missing" in how:
        for k in ("a", "c", "c_over_a", "delta_e"):
            gs.pop(k)
    if "flipped" in how:  # the failure the compressed model will show, declared "expected" in the baseline
        entry["checks"][LATTICE]["status"] = "fail"
    return data


TAMPERING = ["nan", "missing", "flipped"]
GATE = ["-m", "static", "-k", "lattice_a or unchanged", "--model=my-model"]  # the check the model fails + the gate


def test_gate_holds_under_every_tampering(checks, pytester):
    """Baseline from the good model.  Untampered, the gate passes the good model and fails the
    compressed one (4 % too small).  With NaN or missing baseline quantities (the regression check
    compared nothing and passed) or a flipped status (the compressed model's failure became an
    expected one), the compressed model still fails, or the baseline is refused before any work
    (exit 4, one line naming the file and the field); a tampered baseline never passes a good model."""
    base = pytester.path / "baseline.json"
    good, compressed = _model_file(pytester.path, "good"), _model_file(pytester.path, "compressed")
    made = checks(*GATE, f"--model-file={good}", f"--report={pytester.path / 'b'}", f"--baseline={base}",
                  "--update-baseline")
    assert made.ret == 0 and base.is_file()
    assert checks(*GATE, f"--model-file={good}", f"--baseline={base}").ret == 0
    original = json.loads(base.read_text())
    for how in TAMPERING:
        bad = pytester.path / f"baseline_{how}.json"
        bad.write_text(json.dumps(_tamper(original, how)))  # NaN written as bare NaN, as a hand edit would
        r = checks(*GATE, f"--model-file={compressed}", f"--baseline={bad}")
        out = r.stdout.str()
        if how == "flipped":  # refused before any work: the status is not what its verdict says
            err = _one_error_line(r)
            assert r.ret == 4 and len(err) == 1 and str(bad) in err[0] and LATTICE in err[0], (how, err)
        else:
            assert r.ret == 1 and "NOT COMPARED" in out and str(bad) in out, (how, out[-2000:])
            r.stdout.fnmatch_lines(["*FAILED*test_ground_state_unchanged_vs_baseline*"])
    nan = pytester.path / "baseline_nan.json"
    assert checks(*GATE, f"--model-file={good}", f"--baseline={nan}").ret == 1  # not a pass on a NaN baseline


def test_gate_refuses_a_loosened_or_changed_protocol(checks, pytester):
    """Overrides that loosen the static checks (fmax=1.0, one step) turned the compressed model's
    lattice check into a pass, and a gate run never compared its protocol with the baseline's.  Now
    a gate run whose protocol differs is refused before any work naming the fields; with
    --allow-protocol-change it runs and the report says so, overrides shown in header and matrix."""
    base = pytester.path / "baseline.json"
    args = GATE
    good, compressed = _model_file(pytester.path, "good"), _model_file(pytester.path, "compressed")
    assert checks(*args, f"--model-file={good}", f"--report={pytester.path / 'b'}", f"--baseline={base}",
                  "--update-baseline").ret == 0
    loosened = ["--protocol-set=static.fmax=1.0", "--protocol-set=static.max_steps=1"]
    r = checks(*args, f"--model-file={compressed}", f"--baseline={base}", *loosened)
    err = _one_error_line(r)
    assert r.ret == 4 and len(err) == 1 and "static.fmax: 0.001 -> 1.0" in err[0] and "static.max_steps" in err[0], err
    r = checks(*args, f"--model-file={compressed}", f"--baseline={base}", "--protocol=quick")
    err = _one_error_line(r)
    assert r.ret == 4 and len(err) == 1 and "md.steps: 50000 -> 10000" in err[0], err
    out = pytester.path / "allowed"
    r = checks(*args, f"--model-file={good}", f"--baseline={base}", *loosened, "--allow-protocol-change",
               f"--report={out}")
    r.stdout.fnmatch_lines(["*--allow-protocol-change*", "*static.fmax: 0.001 -> 1.0*"])
    md = (out / "report.md").read_text()
    assert "with --allow-protocol-change" in md and "static.fmax: 0.001 -> 1.0" in md
    assert "overrides static.fmax=1.0, static.max_steps=1" in md  # header (Protocols)
    assert "paper+custom (static.fmax=1.0, static.max_steps=1)" in md  # matrix group row


# --- numbers read back are finite and present ----------------------------------------------------

def _baseline_with(value) -> dict:
    return {"models": {"m": {"quantities": {"ground_state": {"a": {"value": value, "unit": "Angstrom"}}},
                             "checks": {}}}, "_source": "b.json"}


@pytest.mark.parametrize("value", [float("nan"), None, "3.9", float("inf")], ids=["nan", "null", "string", "inf"])
def test_baseline_number_that_is_not_finite_fails_the_check(value):
    from pto_checks.verdicts import unchanged_vs_baseline

    v = unchanged_vs_baseline("m", _baseline_with(value), {"ground_state.a": (3.74, 0.0)})
    assert not v.passed and "b.json" in v.message and "ground_state.a" in v.message and "finite" in v.message


def test_missing_baseline_quantity_or_nothing_compared_fails_the_check():
    from pto_checks.verdicts import unchanged_vs_baseline

    v = unchanged_vs_baseline("m", _baseline_with(3.9), {"md.npt_melchionna.tc": (600.0, 0.0)})
    assert not v.passed and "md.npt_melchionna.tc is missing from b.json" in v.message
    assert not unchanged_vs_baseline("m", _baseline_with(3.9), {}).passed
    assert unchanged_vs_baseline("m", _baseline_with(3.9), {"ground_state.a": (3.9001, 0.0)}).passed


def _results_file(tmp_path: Path, **edit) -> Path:
    from pto_checks.results import Results
    from pto_checks.verdicts import Verdict

    res = Results()
    res.quantity("m", "ground_state", "a", 3.9, "Angstrom")
    v = Verdict("lattice", False, "a too small", 3.74, 3.9, 0.05)
    res.check("m", LATTICE, "fail", message=v.message, verdict=v.to_dict())
    res.check("m", "test_static.py::test_other", "pass", message="ok")
    data = json.loads(json.dumps(res.data))
    chk = data["models"]["m"]["checks"]
    if "status" in edit:
        chk[LATTICE]["status"] = edit["status"]
    if "a" in edit:
        data["models"]["m"]["quantities"]["ground_state"]["a"]["value"] = edit["a"]
    if edit.get("check_as_string"):
        chk[LATTICE] = "fail"
    if edit.get("no_status"):
        chk[LATTICE].pop("status")
    if edit.get("message_null"):
        chk[LATTICE]["message"] = None
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("edit", "needle"), [
    ({"status": "pass"}, "its verdict's outcome is 'fail'"),
    ({"a": float("nan")}, "ground_state.a = nan"),
    ({"check_as_string": True}, "not a check object"),
    ({"no_status": True}, f"{LATTICE}.status: missing"),
    ({"message_null": True}, f"{LATTICE}.message: None is not a string"),
], ids=["flipped-status", "nan", "check-as-string", "no-status", "message-null"])
def test_verify_refuses_an_edited_file_in_one_line(tmp_path, capsys, edit, needle):
    path = _results_file(tmp_path, **edit)
    rc = main(["verify", str(path)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 4 and len(err) == 1 and needle in err[0] and str(path) in err[0], err


def test_report_refuses_a_flipped_status(tmp_path, capsys):
    """`pto-checks report` showed a tick for a status "pass" over a failing verdict."""
    good = _results_file(tmp_path)
    assert main(["verify", str(good)]) == 0
    flipped = _results_file(tmp_path, status="pass")
    assert main(["report", str(flipped), "-o", str(tmp_path / "rep")]) == 4
    assert "its verdict's outcome is 'fail'" in capsys.readouterr().err
    assert not (tmp_path / "rep" / "report.html").exists()


def test_malformed_baseline_and_model_file_are_one_line_exit_4(pytester, tmp_path):
    """A baseline check without status or with message null, and a model file with models = 5,
    gave INTERNALERROR (exit 3)."""
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    cases = [([f"--baseline={_results_file(tmp_path / 'a', no_status=True)}"], ".status: missing"),
             ([f"--baseline={_results_file(tmp_path / 'b', message_null=True)}"], ".message: None"),
             ([f"--baseline={_results_file(tmp_path / 'c', check_as_string=True)}"], "not a check object")]
    five = tmp_path / "five.toml"
    five.write_text("models = 5\n")
    cases.append(([f"--model-file={five}", "--model=synthetic:good"], "'models' is int 5"))
    for args, needle in cases:
        r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=synthetic:good",
                                          f"--pto-cache={tmp_path / 'cache'}", *args, timeout=120)
        err = _one_error_line(r)
        assert r.ret == 4 and len(err) == 1 and needle in err[0], (args, r.ret, err[-3:])
        assert "Traceback" not in r.stdout.str() + r.stderr.str()


def test_models_command_refuses_a_malformed_model_file_in_one_line(tmp_path, capsys):
    five = tmp_path / "five.toml"
    five.write_text('[models.x]\nfamily = "ase"\noptions = 5\n')
    assert main(["models", "--model-file", str(five)]) == 4
    assert "[models.x] options = 5: must be a dict" in capsys.readouterr().err


# --- protocol fields --------------------------------------------------------------------------------

@pytest.mark.parametrize("override", ["static.free_start_seed=-5", "md.steps=1e12", "md.max_steps=1e8",
                                      "static.max_steps=1e9", "md.checkpoint_every=1e12"])
def test_seeds_and_step_counts_are_bounded(override):
    with pytest.raises(ProtocolError, match=override.split("=")[0]):
        apply_overrides(get_protocol("smoke"), [override])


def test_every_integer_protocol_field_has_both_bounds():
    import dataclasses

    from pto_checks.protocols import SECTIONS

    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            allowed = f.metadata["allowed"]
            if allowed.integer:
                assert allowed.lo is not None and allowed.hi is not None, f"{section}.{f.name}: unbounded"
            if "seed" in f.name:
                assert allowed.lo == 0, f"{section}.{f.name}"


# --- the cache never follows a link -----------------------------------------------------------------

def _md_protocol(*extra: str):
    return apply_overrides(get_protocol("smoke"), ["md.temperatures_K=300", "md.steps=40", "md.sample_every=5",
                                                   "md.trajectory_every=2", "md.checkpoint_every=20", *extra])


@pytest.fixture(scope="module")
def md_model():
    return load_model("synthetic:md_polar", "cpu")


def _md_row(cache: Cache, model):
    from pto_checks import stages

    return stages.md_sweep(model, _md_protocol(), cache, "nvt", "langevin", progress=False)[0]


def test_planted_link_in_a_partial_folder_is_never_written_through(tmp_path, md_model):
    """``md/<key>.partial/samples.csv -> victim.txt``: the victim was overwritten with MD output."""
    ref = _md_row(Cache(tmp_path / "ref"), md_model)
    key = Path(ref["folder"]).name
    cache = Cache(tmp_path / "cache")
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    partial = cache.root / "md" / f"{key}.partial"
    partial.mkdir(parents=True)
    (partial / "samples.csv").symlink_to(victim)
    (partial / "trajectory.extxyz").symlink_to(victim)
    with pytest.warns(CacheWarning, match=r"samples\.csv|trajectory\.extxyz"):
        row = _md_row(cache, md_model)
    assert victim.read_text() == "the user's file\n"
    assert row["cache_hit"] is False and row["Pz"] == ref["Pz"]


def test_link_leaving_a_finished_entry_is_not_served(tmp_path, md_model):
    """A finished entry's ``trajectory.extxyz`` linked to a file outside the cache was a hit and
    was exported into the report."""
    cache = Cache(tmp_path / "cache")
    ref = _md_row(cache, md_model)
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the report\n")
    traj = Path(ref["folder"]) / "trajectory.extxyz"
    traj.unlink()
    traj.symlink_to(outside)
    with pytest.warns(CacheWarning, match=r"trajectory\.extxyz: a link"):
        row = _md_row(cache, md_model)
    assert row["cache_hit"] is False and not Path(row["folder"], "trajectory.extxyz").is_symlink()


def test_report_md_files_are_copies_and_an_edited_entry_is_recomputed(tmp_path, md_model):
    """Report MD files were hard links into the cache: editing one edited the cached row, served
    as a hit with no warning."""
    from pto_checks.report import export_md_files

    cache = Cache(tmp_path / "cache")
    row = _md_row(cache, md_model)
    out = tmp_path / "report"
    files = export_md_files([row], out, "m", "nvt_langevin")[0]
    copy = out / files["samples"]
    src = Path(row["folder"]) / "samples.csv"
    assert copy.stat().st_ino != src.stat().st_ino and src.stat().st_nlink == 1
    with copy.open("a") as fh:  # edit the report's copy in place
        fh.write("")
    copy.write_text(copy.read_text().replace("\n1", "\n2", 1))
    assert _md_row(cache, md_model)["cache_hit"] is True  # the entry is untouched
    lines = src.read_text().splitlines()  # an edit inside the entry (through any link): caught
    lines[-1] = lines[-1].replace("0", "1", 1)
    src.write_text("\n".join(lines) + "\n")
    with pytest.warns(CacheWarning, match=r"samples\.csv: changed since it was written"):
        assert _md_row(cache, md_model)["cache_hit"] is False


def test_nan_in_samples_is_quarantined_and_results_are_strict_json(tmp_path, md_model):
    """A NaN in samples.csv was accepted (classified cubic, Tc recorded), and results.json held a
    bare NaN (not JSON)."""
    from pto_checks.results import Results

    cache = Cache(tmp_path / "cache")
    row = _md_row(cache, md_model)
    src = Path(row["folder"]) / "samples.csv"
    head, *rows = src.read_text().splitlines()
    col = head.split(",").index("Pz")
    cells = rows[-1].split(",")
    cells[col] = "nan"
    rows[-1] = ",".join(cells)
    src.write_text("\n".join([head, *rows]) + "\n")
    with pytest.warns(CacheWarning, match=r"samples\.csv: row \d+: Pz = nan is not a finite number"):
        assert _md_row(cache, md_model)["cache_hit"] is False
    res = Results()
    res.quantity("m", "md", "x", {"rows": [{"c_over_a_err": float("nan")}]}, "")
    res.write(tmp_path / "r.json")
    json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))


def test_quarantined_folders_are_pruned_to_the_newest(tmp_path):
    from pto_checks.safe_files import KEEP_NEWEST

    cache = Cache(tmp_path)
    for _ in range(KEEP_NEWEST + 3):
        folder, _, _ = cache.get_or_compute("s", "k", lambda f: {"v": 1})
        (folder / "meta.json").write_text("garbage")
        time.sleep(0.01)
        with pytest.warns(CacheWarning):
            cache.get_or_compute("s", "k", lambda f: {"v": 1})
    assert len(list((tmp_path / "s").glob("k.corrupt-*"))) == KEEP_NEWEST


# --- the report folder never destroys a user's files ----------------------------------------------

_TINY = ("from pto_checks.verdicts import Verdict\n"
         "def test_a(model, check):\n    check(Verdict('a', True, 'ok'))\n")


def test_report_into_a_users_folder_is_refused_before_work(pytester, tmp_path):
    """``--report DIR`` deleted ``DIR/figures/fig1_thesis.pdf`` and overwrote ``DIR/report.md``."""
    pytester.makepyfile(test_tiny=_TINY)
    thesis = tmp_path / "thesis"
    (thesis / "figures").mkdir(parents=True)
    (thesis / "figures" / "fig1_thesis.pdf").write_bytes(b"%PDF my figure")
    (thesis / "report.md").write_text("my report")
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=synthetic:good",
                                      f"--pto-cache={tmp_path / 'cache'}", f"--report={thesis}", timeout=120)
    err = _one_error_line(r)
    assert r.ret == 4 and len(err) == 1 and "was not written by pto-checks" in err[0], err
    assert (thesis / "figures" / "fig1_thesis.pdf").read_bytes() == b"%PDF my figure"
    assert (thesis / "report.md").read_text() == "my report"
    assert main(["report", str(_results_file(tmp_path)), "-o", str(thesis)]) == 4


def test_report_folder_keeps_foreign_files_and_writes_shareable_atomic_files(pytester, tmp_path):
    """In a pto-checks report folder, a file the user put into figures/ survives a rebuild; a link
    planted at report.md is replaced, not written through; results.json has the figures' mode."""
    from pto_checks.safe_files import KEEP_NEWEST

    pytester.makepyfile(test_tiny=_TINY)
    out = tmp_path / "out"

    def run():
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=synthetic:good",
                                             f"--pto-cache={tmp_path / 'cache'}", f"--report={out}", timeout=120)

    assert run().ret == 0
    (out / "figures" / "mine.pdf").write_bytes(b"mine")
    victim = tmp_path / "victim.md"
    victim.write_text("keep")
    (out / "report.md").unlink()
    (out / "report.md").symlink_to(victim)
    for i in range(KEEP_NEWEST + 2):  # stale temporary folders of interrupted runs
        (out / f".figures-new-stale{i}").mkdir()
    assert run().ret == 0
    assert (out / "figures" / "mine.pdf").read_bytes() == b"mine"
    assert victim.read_text() == "keep" and not (out / "report.md").is_symlink()
    assert len(list(out.glob(".figures-new-*"))) <= KEEP_NEWEST
    mode = (out / "results.json").stat().st_mode & 0o777
    assert mode == (out / "report.html").stat().st_mode & 0o777 and mode & 0o044 == 0o044 & ~_umask()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_model_names_never_reach_a_path_unsanitised(checks, pytester, tmp_path):
    """Model-file names ``../../../escape_model`` and an absolute path wrote relaxed structures
    outside the report folder."""
    from pto_checks.safe_files import safe_name

    for name in ("../../../escape_model", "/tmp/abs_model", "..", ".", "a/b", "a_b"):
        s = safe_name(name)
        assert "/" not in s and not s.startswith(".") and s
    assert safe_name("a/b") != safe_name("a_b")
    out = pytester.path / "deep" / "er" / "out"
    absolute = str(tmp_path / "abs_model")
    files = [_model_file(pytester.path, "good", "../../../escape_model"), _model_file(pytester.path, "good", absolute)]
    r = checks("-m", "static", "-k", "lattice_a", *(f"--model-file={f}" for f in files),
               "--model=../../../escape_model", f"--model={absolute}", f"--report={out}")
    assert r.ret == 0, r.stdout.str()[-2000:]
    outside = [p for p in pytester.path.rglob("relaxed_*") if out not in p.parents]
    assert not outside and not (tmp_path / "abs_model").exists()
    assert len(list((out / "structures").glob("*/relaxed_tetragonal.extxyz"))) == 2


# --- exit status and the order of the outputs ------------------------------------------------------

def test_results_exit_status_is_the_processs_and_the_baseline_is_written_first(pytester, tmp_path):
    """ENOSPC while building the report: exit 1 but results.json said exit_status 0, and
    --update-baseline (written after the report) silently was not."""
    pytester.makepyfile(test_tiny=_TINY)
    pytester.makeconftest("import errno\nimport pto_checks.report as r\n\n"
                          "def _full(*a, **k):\n    raise OSError(errno.ENOSPC, 'No space left on device')\n\n"
                          "r.build_report = _full\n")
    out, base = tmp_path / "out", tmp_path / "baseline.json"
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=synthetic:good",
                                      f"--pto-cache={tmp_path / 'cache'}", f"--report={out}",
                                      f"--baseline={base}", "--update-baseline", timeout=120)
    assert r.ret == 3
    r.stdout.fnmatch_lines(["*the report in*could not be written*No space left*"])
    data = json.loads((out / "results.json").read_text())
    assert data["harness"]["exit_status"] == 3 and data["runs"][-1]["exit_status"] == 3
    assert base.is_file() and json.loads(base.read_text())["models"]["synthetic:good"]["checks"]


# --- waiting is visible --------------------------------------------------------------------------

_HOLDER = """
import sys, time
from pto_checks.cache import Cache
with Cache(sys.argv[1]).lock("md", "k"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""

_WAITER = """
def test_wait(pto_cache):
    pto_cache.report_every_s = 0.5
    pto_cache.stopped_after_s = 1.0
    with pto_cache.lock("md", "k"):
        pass
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see a stopped process")
def test_waiting_is_visible_under_capture_and_a_stopped_holder_is_named(pytester, tmp_path):
    """With a lock holder stopped (SIGSTOP), the waiter printed nothing under pytest's default
    capture.  Now every report_every_s it says host, PID and age on the terminal, and a holder seen
    stopped for stopped_after_s is called stopped."""
    cache = tmp_path / "cache"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(cache), "2"], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGSTOP)
        pytester.makepyfile(test_wait=_WAITER)
        wake = f"import os, signal, time; time.sleep(10); os.kill({holder.pid}, signal.SIGCONT)"
        continued = subprocess.Popen([sys.executable, "-c", wake])
        r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=synthetic:good",
                                          f"--pto-cache={cache}", timeout=120)
        continued.wait()
        assert r.ret == 0
        text = r.stdout.str()
        assert f"held by PID {holder.pid} on " in text and "waiting" in text, text[-2000:]
        assert f"PID {holder.pid} is STOPPED" in text and "kill -CONT" in text, text[-2000:]
    finally:
        holder.kill()
        holder.wait()


# --- model files and the MACE conversion cache run no planted code -------------------------------

class _Planted:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_planted_mace_conversion_file_is_never_unpickled(tmp_path, monkeypatch):
    """The MACE conversion cache reloaded its file with torch.load(weights_only=False); the SHA-256
    of public MACE files is known, so a file planted under the expected name ran code."""
    pytest.importorskip("mace")
    import e3nn
    import torch

    from pto_checks.models import mace_convert

    if e3nn.__version__.startswith("0.4."):
        pytest.skip("mace-torch's own e3nn: nothing is converted")
    fixture = ROOT / "tests" / "harness" / "data" / "mace-e3nn044" / "small.model"
    monkeypatch.setenv("PTO_CHECKS_MACE_CACHE", str(tmp_path / "cache"))
    sha = mace_convert.file_sha256(fixture)
    marker = tmp_path / "PWNED"
    folder = tmp_path / "cache"
    folder.mkdir()
    for name in (f"{sha}-e3nn{e3nn.__version__}-v{mace_convert.CONVERTER_VERSION}.model",
                 f"{sha}-e3nn{e3nn.__version__}-v{mace_convert.CONVERTER_VERSION}.weights.pt"):
        torch.save(_Planted(str(marker)), folder / name)  # what an attacker plants under the known name
    loaded = load_model(f"mace:{fixture}", "cpu")
    assert not marker.exists() and loaded.fingerprint == sha
    weights = Path(loaded.details["converted_file"])
    assert torch.load(weights, weights_only=True)  # a state_dict: loads with no unpickling of objects
    torch.save(_Planted(str(marker)), weights)  # planted over the verified file: its SHA-256 no longer matches
    load_model(f"mace:{fixture}", "cpu")
    assert not marker.exists()
