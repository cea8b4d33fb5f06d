"""A ``-m`` expression naming a marker that does not exist is refused before any work (exit status 4,
one line naming the closest markers); expressions of known markers select as before."""

from __future__ import annotations

import pytest

from pto_checks.markers import MARKERS
from pto_checks.plugin.marker_expression import expression_names, unknown_marker_message

KNOWN = [*MARKERS, "skip", "skipif", "xfail", "parametrize", "usefixtures", "filterwarnings"]


@pytest.mark.parametrize("expr", ["sanity or static or phonon", "npt and not equivalence", "harness",
                                  "not slow", "(dynamic and npt) or nvt", "skip(reason='x') or sanity", ""])
def test_known_expressions_pass(expr):
    assert unknown_marker_message(expr, KNOWN) is None


@pytest.mark.parametrize(("expr", "unknown", "closest"), [
    ("dynamc", "dynamc", "dynamic"),
    ("sanity or statc", "statc", "static"),
    ("npt and not equivalance", "equivalance", "equivalence"),
    ("(sanity and phonon) and (static or nnpt)", "nnpt", "npt"),  # reached by no short-circuit path
])
def test_unknown_marker_is_named_with_the_closest(expr, unknown, closest):
    msg = unknown_marker_message(expr, KNOWN)
    assert msg is not None and "\n" not in msg
    assert f"'{unknown}' (closest: " in msg and closest in msg.split(f"'{unknown}' (closest: ")[1].split(")")[0]


def test_a_syntax_error_is_left_to_pytest():
    assert expression_names("sanity and (") is None
    assert unknown_marker_message("sanity and (", KNOWN) is None


def test_mistyped_marker_exits_4_before_work(pytester, tmp_path):
    """``pytest -m dynamc --report out/``: one line naming ``dynamic``, exit 4, nothing run, no
    results.json; the documented expressions still select their tests."""
    ran = tmp_path / "ran"
    ran.mkdir()
    pytester.makepyfile(test_x=f"""
import pytest, pathlib
R = pathlib.Path({str(ran)!r})

@pytest.mark.dynamic
@pytest.mark.npt
def test_npt():
    (R / "npt").touch()

@pytest.mark.sanity
def test_sanity():
    (R / "sanity").touch()
""")
    common = ("-p", "no:cacheprovider", "--model=synthetic:good", f"--pto-cache={tmp_path / 'cache'}")
    out = tmp_path / "out"
    bad = pytester.runpytest_subprocess(*common, "-m", "dynamc", f"--report={out}", timeout=120)
    err = [line for line in bad.errlines if line.strip()]
    assert bad.ret == 4, bad.stdout.str() + bad.stderr.str()
    assert len(err) == 1 and "'dynamc'" in err[0] and "dynamic" in err[0], err
    assert not list(ran.iterdir()) and not (out / "results.json").exists()
    for expr, expected in (("sanity or static or phonon", {"sanity"}), ("npt and not equivalence", {"npt"})):
        ok = pytester.runpytest_subprocess(*common, "-m", expr, timeout=120)
        assert ok.ret == 0, ok.stdout.str()
        assert {p.name for p in ran.iterdir()} == expected
        for p in ran.iterdir():
            p.unlink()
