"""The check that a ``-m`` expression names only registered markers (pytest layer: it uses pytest's
own expression parser).  A mistyped marker would otherwise deselect every test and check nothing."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pto_checks.markers import MARKERS


def registered(config) -> list[str]:
    """Names of every marker registered on ``config``: pytest's own (skip, xfail, parametrize, ...),
    every plugin's, the project's ini ``markers`` and :data:`MARKERS`."""
    return sorted({line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")})


def expression_names(expr: str) -> set[str] | None:
    """The marker names in a ``-m`` expression (``not``/``and``/``or`` and keyword arguments left out);
    None when pytest cannot parse it (pytest then reports the syntax error itself)."""
    try:
        from _pytest.mark.expression import Expression
    except ImportError:  # pytest's parser moved: nothing to check against
        return None
    try:
        compiled = Expression.compile(expr)
    except SyntaxError:
        return None
    if hasattr(compiled, "idents"):
        return set(compiled.idents())
    # an older pytest without Expression.idents: the names that evaluation asks about, with every
    # name true and with every name false (and/or short-circuit differently under the two)
    seen: set[str] = set()
    for value in (True, False):
        compiled.evaluate(lambda name, /, _v=value, **kw: seen.add(name) or _v)
    return seen


def unknown_marker_message(expr: str | None, known: Iterable[str]) -> str | None:
    """One line naming the markers of ``expr`` that are not in ``known`` and the closest known ones,
    or None when every name is known.  A mistyped marker would otherwise select no test at all and
    the run would end with nothing checked."""
    names = expression_names(expr or "") if expr and expr.strip() else None
    known = sorted(set(known))
    unknown = sorted(n for n in names or () if n not in known)
    if not unknown:
        return None
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        parts.append(f"{name!r} (closest: {', '.join(close)})" if close else f"{name!r}")
    ours = ", ".join(MARKERS)
    return (f"-m {expr!r}: no marker named {'; '.join(parts)}. The pto-checks markers: {ours} "
            "(pytest --markers lists every registered one)")
