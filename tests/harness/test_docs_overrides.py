"""Every ``--protocol-set SECTION.FIELD=VALUE`` that the documentation writes is a field the harness
accepts, with a value inside its declared range (a placeholder value such as ``N`` is checked for
the field only)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pto_checks.protocols import parse_override

ROOT = Path(__file__).resolve().parents[2]
#: ``--protocol-set md.steps=2000`` or ``--protocol-set=md.steps=2000``; the value ends at a space,
#: a quote or a backtick (markdown code spans)
OVERRIDE = re.compile(r"--protocol-set[ =]([A-Za-z_]+\.[A-Za-z_0-9]+)=([^\s`'\"|)]*)")
PLACEHOLDER = re.compile(r"^[A-Z_]+$")  # VALUE, N: a value the reader chooses


def documented_overrides(root: Path = ROOT) -> list[tuple[str, int, str, str]]:
    """(file, line, field, value) of every ``--protocol-set`` in README.md and docs/**/*.md."""
    files = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    out = []
    for path in files:
        if not path.is_file():
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for field, value in OVERRIDE.findall(line):
                if not PLACEHOLDER.match(field.replace(".", "_")):  # SECTION.FIELD: the syntax itself
                    out.append((str(path.relative_to(root)), lineno, field, value))
    return out


def test_the_docs_name_protocol_overrides():
    found = documented_overrides()
    assert len(found) >= 5 and any(f == "accuracy.every" for _, _, f, _ in found), found


@pytest.mark.parametrize(("where", "lineno", "field", "value"), documented_overrides(),
                         ids=[f"{w}:{n}:{f}" for w, n, f, _ in documented_overrides()])
def test_every_documented_protocol_override_is_accepted(where, lineno, field, value):
    """The field exists and the value written next to it is inside the field's range."""
    try:
        parse_override(f"{field}={value}")
    except ValueError as exc:  # a placeholder value is refused on its range only: the field exists
        if "unknown protocol field" in str(exc) or not PLACEHOLDER.match(value):
            pytest.fail(f"{where}:{lineno}: --protocol-set {field}={value} is refused: {exc}")


def test_an_unknown_field_is_found_by_the_scan(tmp_path):
    """The scan reads code spans and commands, and a misspelt field fails the check above."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("run `pytest --protocol-set accuracy.evry=4` and\n"
                                        "    pytest --protocol-set=md.steps=200 --protocol-set SECTION.FIELD=VALUE\n")
    (tmp_path / "docs" / "x.md").write_text("| `--protocol-set md.max_steps=N` |\n")
    found = documented_overrides(tmp_path)
    assert [(f, v) for _, _, f, v in found] == [("accuracy.evry", "4"), ("md.steps", "200"), ("md.max_steps", "N")]
    with pytest.raises(ValueError, match="unknown protocol field 'accuracy.evry'"):
        parse_override("accuracy.evry=4")
