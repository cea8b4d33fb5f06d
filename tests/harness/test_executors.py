"""The MD stage on executors: in-process (default) and Dask (a LocalCluster of process workers,
a running scheduler, batch jobs through dask-jobqueue).

The Dask runs happen in subprocesses (``DRIVER`` below): a cluster's worker processes must not
inherit pytest's state, and the driver's ``__main__`` (the slow model's loader) travels to the
workers by value.  Each test uses the synthetic model on 40 atoms and a few hundred steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]

DRIVER = r'''
import json, os, signal, sys, threading, time
from pto_checks import stages
from pto_checks.cache import Cache
from pto_checks.executors import ExecutorError, make_executor
from pto_checks.models import ModelSpec, _synthetic_loader, load_model
from pto_checks.protocols import apply_overrides, get_protocol


def slow_loader(spec, device):
    """synthetic:md_polar, slowed down by SLOW_S seconds per force call (same numbers)."""
    loaded = _synthetic_loader(spec, device)
    calc, delay = loaded.calculator, float(os.environ.get("SLOW_S", "0"))
    orig = calc.calculate

    def slow(*a, **k):
        time.sleep(delay)
        return orig(*a, **k)

    calc.calculate = slow
    return loaded


def main():
    cache, mode, what = sys.argv[1], sys.argv[2], sys.argv[3]
    settings = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    spec = ModelSpec("slow-md-polar", "synthetic", "md_polar", "PBEsol", "test", slow_loader,
                     options={"variant": "md_polar"})
    model = load_model(spec, "cpu")
    over = ["md.temperatures_K=300,700", "md.steps=60", "md.checkpoint_every=20"]
    if what == "kill":
        over = ["md.temperatures_K=600", "md.steps=200", "md.checkpoint_every=20"]
    proto = apply_overrides(get_protocol("smoke"), over)
    lines = []
    ex = make_executor(dict(settings, executor=mode), notify=lines.append)
    killed = []
    if what in ("kill", "gone"):
        md = os.path.join(cache, "md")

        def killer():
            while not any(os.path.isfile(os.path.join(md, d, "checkpoint.npz"))
                          for d in (os.listdir(md) if os.path.isdir(md) else []) if d.endswith(".partial")):
                time.sleep(0.05)
            time.sleep(0.3)
            if what == "kill":  # the worker process that runs the task
                busy = [w for w, keys in ex.client.processing().items() if keys]
                pid = ex.client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            else:  # the scheduler process (its PID in the settings)
                os.kill(int(os.environ["SCHEDULER_PID"]), signal.SIGKILL)
                killed.append(int(os.environ["SCHEDULER_PID"]))

        threading.Thread(target=killer, daemon=True).start()
    sweeps = [("npt", "melchionna", "ase"), ("nvt", "langevin", "ase"), ("npt", "melchionna", "batched")]
    if what in ("kill", "gone"):
        sweeps = [("npt", "melchionna", "ase")]
    out = {}
    try:
        for ens, integ, engine in sweeps:
            rows = stages.md_sweep(model, proto, Cache(cache), ens, integ, engine=engine, progress=False,
                                   executor=ex)
            out[f"{ens}-{integ}-{engine}"] = [{k: v for k, v in r.items() if k not in ("folder", "cache_hit")}
                                              for r in rows]
            out[f"{ens}-{integ}-{engine}-hits"] = [r["cache_hit"] for r in rows]
    except ExecutorError as exc:
        out["error"] = str(exc)
    ex.close()
    print(json.dumps({"rows": out, "lines": lines, "killed": killed}))


if __name__ == "__main__":
    main()
'''


def _drive(tmp_path: Path, cache: str, mode: str, what: str, settings: dict | None = None,
           env: dict | None = None, timeout: float = 300) -> dict:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    e = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / cache), mode, what,
                           json.dumps(settings or {})], env=e, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_local_dask_cluster_gives_the_in_process_results(tmp_path):
    """A LocalCluster of 2 process workers runs NPT and NVT sweeps (ASE engine, one job per
    temperature) and a batched-engine sweep (one job): rows identical to the in-process run."""
    ref = _drive(tmp_path, "ref", "inprocess", "sweeps")
    got = _drive(tmp_path, "dask", "dask", "sweeps", {"workers": 2})
    assert got["rows"] == ref["rows"]
    assert not any(any(h) for k, h in got["rows"].items() if k.endswith("-hits"))
    pids = {line.split("(PID ")[1].split(")")[0] for line in got["lines"] if "(PID " in line}
    assert len(pids) == 2, got["lines"]  # both worker processes ran tasks
    assert str(os.getpid()) not in pids


@pytest.mark.slow
def test_killed_worker_task_is_rescheduled_and_resumes(tmp_path):
    """SIGKILL the worker process running a task after its first checkpoint: the nanny restarts it,
    the scheduler reschedules the task, which resumes from the checkpoint and ends with the
    numbers of an uninterrupted run."""
    ref = _drive(tmp_path, "ref", "inprocess", "kill", env={"SLOW_S": "0"})
    got = _drive(tmp_path, "dask", "dask", "kill", {"workers": 2}, env={"SLOW_S": "0.01"})
    assert got["killed"], got
    done = [line for line in got["lines"] if line.startswith("[pto-checks] done on")]
    assert len(done) == 1 and "resumed from checkpoint" in done[0], got["lines"]
    assert f"(PID {got['killed'][0]})" not in done[0]
    assert got["rows"] == ref["rows"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_scheduler_gone_is_a_clear_error_and_nothing_is_lost(tmp_path):
    """Kill the scheduler mid-sweep: the driver stops with an error that says what to do, the
    task's checkpoint stays in the cache, and the rerun resumes to the uninterrupted numbers."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", SLOW_S="0.01")
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", str(port), "--no-dashboard"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr, "--nthreads", "1",
                               "--no-nanny", "--death-timeout", "20", "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        got = _drive(tmp_path, "gone", "dask", "gone", {"dask_scheduler": addr},
                     env={"SLOW_S": "0.01", "SCHEDULER_PID": str(sched.pid)})
    finally:
        for p in (sched, worker):
            if p.poll() is None:
                p.kill()
            p.wait()
    assert got["killed"] == [sched.pid]
    msg = got["rows"]["error"]
    assert "went away" in msg and "Nothing is lost" in msg and "run the same command again" in msg, msg
    assert list((tmp_path / "gone" / "md").glob("*.partial/checkpoint.npz"))
    ref = _drive(tmp_path, "ref", "inprocess", "gone")
    resumed = _drive(tmp_path, "gone", "inprocess", "gone")
    assert resumed["rows"] == ref["rows"]


def test_no_scheduler_at_the_address_is_a_clear_error(monkeypatch):
    from pto_checks.executors import ExecutorError, dask_executor, make_executor

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 1)
    t0 = time.time()
    with pytest.raises(ExecutorError, match="no Dask scheduler answers at tcp://127.0.0.1:.*drop --dask-scheduler"):
        make_executor({"dask_scheduler": f"tcp://127.0.0.1:{_free_port()}"})
    assert time.time() - t0 < 20


# --- options, settings, job scripts (no cluster started) ---------------------------------------

def test_executor_choice_from_options():
    from pto_checks.executors import InProcess, make_executor, wants_dask

    assert isinstance(make_executor({}), InProcess)
    assert not wants_dask({"executor": "inprocess"})
    assert wants_dask({"dask_scheduler": "tcp://x:8786"}) and wants_dask({"cluster": "slurm"})
    with pytest.raises(ValueError, match="contradicts"):
        wants_dask({"executor": "inprocess", "cluster": "slurm"})


def test_local_workers_get_one_gpu_each():
    from pto_checks.executors.dask_executor import gpu_env

    assert [gpu_env(i, ["0", "1"]) for i in range(3)] == [
        {"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}, {"CUDA_VISIBLE_DEVICES": "0"}]
    assert gpu_env(0, []) == {}


def test_slurm_job_script(tmp_path, capsys):
    """The Slurm script: partition, walltime, account, gres/gpu, memory, prologue and the worker
    command (one thread, GPU resource) pointing at this interpreter."""
    pytest.importorskip("dask_jobqueue")
    from pto_checks.cli import main

    rc = main(["cluster-script", "--cluster", "slurm", "--queue", "gpu-h100", "--walltime", "12:00:00",
               "--gpus-per-job", "1", "--jobs", "4", "--account", "matsci", "--job-cores", "8"])
    script = capsys.readouterr().out
    assert rc == 0
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for want in ("#SBATCH -p gpu-h100", "#SBATCH -t 12:00:00", "#SBATCH --gres=gpu:1", "#SBATCH -A matsci",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=15G"):
        assert want in lines, script
    worker = [ln for ln in lines if "distributed.cli.dask_worker" in ln]
    assert len(worker) == 1 and worker[0].startswith(sys.executable)
    assert "--nthreads 1" in worker[0] and "--resources GPU=1" in worker[0] and "--nanny" in worker[0]
    assert "--nworkers" not in worker[0]  # one worker per one-GPU job

    cfg = tmp_path / "cluster.toml"
    cfg.write_text('[cluster]\nkind = "slurm"\nqueue = "long"\nwalltime = "48:00:00"\ngpus_per_job = 2\n'
                   'prologue = ["source /opt/pto/.venv/bin/activate"]\ndirectives = ["--constraint=h100"]\n')
    assert main(["cluster-script", "--cluster-file", str(cfg), "--walltime", "06:00:00"]) == 0
    script = capsys.readouterr().out
    for want in ("#SBATCH -p long", "#SBATCH -t 06:00:00", "#SBATCH --gres=gpu:2", "#SBATCH --constraint=h100",
                 "source /opt/pto/.venv/bin/activate"):
        assert want in script.splitlines(), script
    assert "--nworkers 2" in script  # one worker process per GPU


@pytest.mark.parametrize(("kind", "wants"), [
    ("pbs", ["#PBS -q gpu", "#PBS -l walltime=01:00:00", "#PBS -l select=1:ncpus=1:ngpus=1:mem=16GB"]),
    ("lsf", ["#BSUB -q gpu", "#BSUB -W 01:00", '#BSUB -gpu "num=1"']),
])
def test_pbs_and_lsf_through_the_same_class(kind, wants):
    pytest.importorskip("dask_jobqueue")
    from pto_checks.executors.clusters import ClusterSettings, job_script

    script = job_script(ClusterSettings(kind=kind, queue="gpu", walltime="01:00:00", gpus_per_job=1))
    for want in wants:
        assert want in script.splitlines(), script


def test_cluster_settings_errors(tmp_path):
    from pto_checks.executors.clusters import ClusterSettings

    bad = tmp_path / "c.toml"
    bad.write_text("[cluster]\nkind = 'slurm'\nwall_time = '1:00:00'\n")
    with pytest.raises(ValueError, match="unknown keys.*wall_time"):
        ClusterSettings.from_toml(bad)
    with pytest.raises(ValueError, match="choose one of slurm, pbs, lsf"):
        ClusterSettings(kind="sge")


def test_pytest_options_reject_dask_with_xdist(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=synthetic:md_polar",
                                           "--executor=dask", "-n", "2")
    result.stderr.fnmatch_lines(["*--executor dask with pytest-xdist*--dask-scheduler ADDRESS*"])


@pytest.mark.slow
def test_pytest_run_on_dask_records_the_in_process_results(pytester, check_files):
    """The real check file under ``--executor dask --workers 2``: the same MD rows, verdicts and
    results.json as the default (the executor only changes where the tasks run)."""
    check_files("test_dynamic.py")

    def run(name: str, *args: str) -> dict:
        report = pytester.path / name
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--model=synthetic:md_polar", "--protocol=smoke", "-m", "npt",
            "--protocol-set=md.steps=60", f"--pto-cache={pytester.path / name / 'cache'}", f"--report={report}",
            *args)
        assert result.ret in (0, 1), result.stdout.str()[-3000:]
        data = json.loads((report / "results.json").read_text())["models"]["synthetic:md_polar"]
        md = {k: v["value"] for k, v in data["quantities"]["md"].items()}  # without the time recorded
        return {"md": md, "checks": {k: v["status"] for k, v in data["checks"].items()},
                "out": result.stdout.str()}

    ref = run("ref")
    got = run("dask", "--executor=dask", "--workers=2")
    assert "error" not in ref["checks"].values(), ref["checks"]
    assert got["md"] == ref["md"] and got["checks"] == ref["checks"]
    assert "MD job(s) submitted to local cluster (2 workers)" in got["out"]
    again = run("dask", "--executor=dask", "--workers=2")  # all from the cache: no cluster started
    assert again["md"] == {k: {**v, "rows": [{**r, "cache_hit": True} for r in v["rows"]]}
                           for k, v in got["md"].items()}
    assert "submitted" not in again["out"]
