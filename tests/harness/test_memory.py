"""Memory this process may take (:mod:`pto_checks.memory`): MemAvailable and cgroup limits, from
fake /proc and cgroup files."""

from __future__ import annotations

from pto_checks import memory


def _files(root, files: dict[str, str]):
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)


def test_meminfo_available(tmp_path):
    _files(tmp_path, {"meminfo": "MemTotal: 24731408 kB\nMemFree: 100 kB\nMemAvailable: 2048 kB\n"})
    assert memory.meminfo_available(tmp_path / "meminfo") == 2048 * 1024
    _files(tmp_path, {"bad": "MemTotal: 1 kB\n"})
    assert memory.meminfo_available(tmp_path / "bad") is None
    assert memory.meminfo_available(tmp_path / "missing") is None


def test_cgroup_headroom_v2_v1_and_no_limit(tmp_path):
    v2 = tmp_path / "v2"
    _files(v2, {"fs/job/memory.max": "4000\n", "fs/job/memory.current": "1000\n",
                "fs/job/step/memory.max": "max\n", "self": "0::/job/step\n"})
    assert memory.cgroup_headroom(v2 / "fs", v2 / "self") == 3000  # the parent's limit binds
    v1 = tmp_path / "v1"
    _files(v1, {"fs/memory/x/memory.limit_in_bytes": "5000", "fs/memory/x/memory.usage_in_bytes": "4500",
                "self": "4:memory:/x\n"})
    assert memory.cgroup_headroom(v1 / "fs", v1 / "self") == 500
    none = tmp_path / "none"
    _files(none, {"fs/memory/memory.limit_in_bytes": "9223372036854771712", "self": "4:memory:/\n"})
    assert memory.cgroup_headroom(none / "fs", none / "self") is None


def test_available_takes_the_tighter(monkeypatch):
    monkeypatch.setattr(memory, "meminfo_available", lambda: 8 * 2**30)
    monkeypatch.setattr(memory, "cgroup_headroom", lambda: 2 * 2**30)
    assert memory.available_bytes() == (2 * 2**30, "cgroup memory limit")
    monkeypatch.setattr(memory, "cgroup_headroom", lambda: None)
    assert memory.available_bytes() == (8 * 2**30, "MemAvailable")
    monkeypatch.setattr(memory, "meminfo_available", lambda: None)
    assert memory.available_bytes() == (None, "unknown")
