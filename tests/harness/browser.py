"""Headless Chromium (Debian's ``chromium``) for the report tests: the DOM after the page's load
script ran, and screenshots (saved as CI artefacts under ``out-*/``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


def chromium() -> str:
    """The browser's executable; fails under CI (``.ci/run`` installs it), skips elsewhere."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed: apt-get install chromium")
    return exe


def _base(width: int, height: int) -> list[str]:
    return [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            f"--user-data-dir={tempfile.mkdtemp()}", f"--window-size={width},{height}", "--virtual-time-budget=5000"]


def dump_dom(html: Path, width: int = 1400, height: int = 1000) -> str:
    """The page's DOM after load, in a ``width`` x ``height`` window."""
    cmd = [*_base(width, height), "--dump-dom", html.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True).stdout


def screenshot(html: Path, path: Path, width: int = 1400, height: int = 1800) -> Path:
    """A PNG screenshot of the page's top ``height`` px in a ``width`` px wide window."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*_base(width, height), f"--screenshot={path.resolve()}", html.resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)
    return path


def body_attr(dom: str, name: str) -> str:
    body = dom[dom.index("<body"):dom.index(">", dom.index("<body"))]
    return body.split(f'{name}="')[1].split('"')[0]


def figures_rendered(dom: str) -> tuple[int, int]:
    """(figures on the page, figures the browser decoded), as the page's load script recorded them."""
    return int(body_attr(dom, "data-figures")), int(body_attr(dom, "data-figures-rendered"))
