"""Run the ```bash blocks of documentation pages, in order, as a user would paste them.

    python scripts/run_doc_blocks.py docs/user-guide/quickstart.md [--skip REGEX] [--ok-exit 0,1]

Each command line (continuations joined) runs with ``bash -c`` from the repository root; a line
matching ``--skip`` (e.g. the install step CI has already run) is printed and not run. A command
whose exit status is not in ``--ok-exit`` stops the run with that status: the page's commands no
longer work as written.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands(page: Path) -> list[str]:
    """The shell commands of every ```bash block of ``page`` (comments stripped, ``\\`` joined)."""
    out: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
        pending = ""
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line) if not line.lstrip().startswith("#") else ""
            if not line.strip():
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            out.append((pending + line).strip())
            pending = ""
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pages", nargs="+", type=Path)
    p.add_argument("--skip", default=None, help="regex: commands matching it are not run")
    p.add_argument("--ok-exit", default="0", help="comma list of accepted exit statuses (default 0)")
    args = p.parse_args(argv)
    ok = {int(x) for x in args.ok_exit.split(",")}
    for page in args.pages:
        cmds = commands(page)
        if not cmds:
            print(f"{page}: no bash block", file=sys.stderr)
            return 2
        for cmd in cmds:
            if args.skip and re.search(args.skip, cmd):
                print(f"[{page.name}] skipped: {cmd}", flush=True)
                continue
            print(f"[{page.name}] $ {cmd}", flush=True)
            rc = subprocess.call(["bash", "-c", cmd], cwd=ROOT)
            if rc not in ok:
                print(f"[{page.name}] exit {rc}: {cmd}", file=sys.stderr)
                return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
