"""Threads per process (:mod:`pto_checks.threads`): the share of the usable cores from fake
affinity, cgroup quotas, load and worker counts; the overrides; where the choice is shown."""

from __future__ import annotations

import os

import pytest

from pto_checks import threads
from pto_checks.threads import MARKER, ThreadSource, cgroup_cpu_quota, plan


@pytest.mark.parametrize(("affinity", "quota", "load", "host", "xdist", "dask", "want"), [
    (2, None, 0.0, 2, 1, 1, 2),      # idle 2-core machine, one process: both cores
    (2, None, 0.0, 2, 2, 1, 1),      # -n 2: one core each
    (2, None, 1.6, 2, 1, 1, 1),      # another process keeps a core busy: the other one only
    (2, None, 8.0, 2, 1, 1, 1),      # overloaded: never below 1
    (16, None, 0.0, 16, 2, 2, 4),    # 2 xdist workers x 2 Dask workers on 16 cores
    (16, None, 0.0, 16, 3, 1, 5),    # floor of 16/3
    (64, 4.0, 0.0, 64, 1, 1, 4),     # container: cgroup quota of 4 cores on a 64-core host
    (64, 2.5, 0.0, 64, 1, 1, 2),     # fractional quota rounds down
    (64, 4.0, 32.0, 64, 1, 1, 2),    # host half busy: half of the container's cores
    (8, 16.0, None, None, 1, 1, 8),  # a quota above the affinity does not add cores; load unknown
    (4, 0.5, 0.0, 4, 1, 1, 1),       # quota below one core: one thread
])
def test_share_of_usable_cores(affinity, quota, load, host, xdist, dask, want):
    p = plan(None, {}, affinity=affinity, quota=quota, load_1min=load, host_cpus=host,
             xdist_workers=xdist, dask_workers=dask)
    assert p.threads == want and p.source is ThreadSource.AUTO
    assert p.processes == xdist * dask


def test_option_overrides_and_user_environment_is_kept():
    fake = dict(affinity=2, quota=None, load_1min=0.0, host_cpus=2, xdist_workers=2)
    assert plan(3, {"OMP_NUM_THREADS": "1"}, **fake).threads == 3  # --threads wins over everything
    assert plan(3, {}, **fake).source is ThreadSource.OPTION
    user = plan(None, {"OMP_NUM_THREADS": "4"}, **fake)
    assert (user.threads, user.source) == (4, ThreadSource.ENVIRONMENT)
    # exported by the harness for its child processes: recomputed, not taken as the user's
    inherited = plan(None, {"OMP_NUM_THREADS": "2", MARKER: "2"}, **fake)
    assert (inherited.threads, inherited.source) == (1, ThreadSource.AUTO)
    assert plan(None, {"OMP_NUM_THREADS": "junk"}, **fake).source is ThreadSource.AUTO
    for bad in (0, -1):
        with pytest.raises(ValueError, match="allowed an integer >= 1"):
            plan(bad, {}, **fake)


def _cgroup(tmp_path, self_cgroup: str, files: dict[str, str]):
    for rel, text in files.items():
        f = tmp_path / "fs" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "self").write_text(self_cgroup)
    return cgroup_cpu_quota(tmp_path / "fs", tmp_path / "self")


def test_cgroup_quota_v2_and_v1(tmp_path):
    assert _cgroup(tmp_path / "a", "0::/\n", {"cpu.max": "150000 100000\n"}) == 1.5
    assert _cgroup(tmp_path / "b", "0::/\n", {"cpu.max": "max 100000\n"}) is None
    # v2, quota on a parent of the process's cgroup (a job step inside a job): the smallest wins
    assert _cgroup(tmp_path / "c", "0::/job/step\n", {"job/cpu.max": "200000 100000", "job/step/cpu.max":
                                                     "max 100000"}) == 2.0
    v1 = {"cpu,cpuacct/docker/x/cpu.cfs_quota_us": "300000", "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000"}
    assert _cgroup(tmp_path / "d", "4:cpu,cpuacct:/docker/x\n", v1) == 3.0
    no_quota = {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}
    assert _cgroup(tmp_path / "e", "1:cpu:/\n", no_quota) is None
    assert _cgroup(tmp_path / "f", "garbage", {}) is None


def test_apply_exports_the_choice_and_sets_torch(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    for var in (*threads.THREAD_VARS, MARKER, "OMP_WAIT_POLICY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads, "_applied", None)
    try:
        p = threads.apply(threads.ThreadPlan(2, ThreadSource.OPTION, 2.0))
        assert torch.get_num_threads() == 2
        assert all(os.environ[v] == "2" for v in threads.THREAD_VARS) and os.environ[MARKER] == "2"
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert threads.applied() is p and threads.describe_current() == "2 threads (--threads)"
        # a child process (an xdist or Dask worker) recomputes its share: the variables are marked
        assert plan(None, os.environ, affinity=4, load_1min=0, host_cpus=4, xdist_workers=4).threads == 1
    finally:
        torch.set_num_threads(before)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=before)


def test_describe_names_the_reason():
    p = plan(None, {}, affinity=2, load_1min=1.2, host_cpus=2, xdist_workers=1)
    assert p.describe() == ("1 thread (auto: 2 cores usable, 1 busy with other work, 1 process; "
                            "--threads N overrides)")


def test_threads_option_refused_below_one(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=synthetic:md_polar", "--threads=0")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--threads 0: allowed an integer >= 1*"])


def test_threads_option_shown_in_the_header(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model=synthetic:md_polar", "--threads=3")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["pto-checks: *; 3 threads (--threads) per process"])


def test_cli_run_refuses_bad_threads_before_starting(capsys):
    from pto_checks.cli import main

    for bad in ("0", "x"):
        assert main(["run", "--threads", bad, "-m", "static"]) == 4
        assert f"--threads {bad}: allowed an integer >= 1" in capsys.readouterr().err
