"""Recording and reporting: each check's outcome and verdict into results.json, the merge of
xdist workers' parts, the report, the baseline update and the terminal summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pto_checks.plugin.fixtures import VERDICT_KEY
from pto_checks.plugin.gate import test_id_of
from pto_checks.plugin.session import PtoSession, parts_dir, session_state, xdist_worker
from pto_checks.results import already_there, annotate_integrator_flips, merge, status_of


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    rep = outcome.get_result()
    params = getattr(getattr(item, "callspec", None), "params", {})
    name = params.get("model_name")
    st = session_state(item.config)
    if name is None or st is None or item.get_closest_marker("benchmark") is not None:
        return  # a benchmark measures (results.json: quantities.benchmark), it is no verdict on the model
    verdict = item.stash.get(VERDICT_KEY, None)
    if rep.when == "call" or rep.outcome != "passed":
        gate = None
        if hasattr(rep, "wasxfail"):
            gate = "expected failure (baseline)" if rep.skipped else "UNEXPECTED PASS (baseline)"
        elif rep.failed and "XPASS(strict)" in str(rep.longrepr):
            gate = "UNEXPECTED PASS (baseline): accept the improvement with --update-baseline"
        if gate and verdict is not None:
            status, msg = verdict.outcome.value, verdict.message
        elif rep.skipped and verdict is not None and verdict.inconclusive and rep.when == "call":
            status, msg = "inconclusive", verdict.message
        elif rep.skipped:
            status = "skip"
            msg = str(rep.longrepr[2]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        elif rep.passed:
            status, msg = "pass", verdict.message if verdict else ""
        elif verdict is not None and not verdict.passed and rep.when == "call":
            status, msg = "fail", verdict.message
        else:
            status = "error"
            msg = call.excinfo.exconly()[-2000:] if call.excinfo else str(rep.longrepr)[-2000:]
        markers = sorted({m.name for m in item.iter_markers()} - {"parametrize", "usefixtures", "xfail"})
        test_id = test_id_of(item)
        st.results.check(name, test_id, status, message=msg,
                            verdict=verdict.to_dict() if verdict else None, markers=markers)
        if st.baseline and not gate:
            prior = st.baseline.get("models", {}).get(name, {}).get("checks", {}).get(test_id)
            if prior and status_of(prior) == "inconclusive":  # not a pass there either: judged as any other check now
                gate = f"inconclusive in the baseline; now {status}"
        if gate:
            st.results.model_entry(name)["checks"][test_id]["gate"] = gate
        _once_per_model_load_error(st, name, rep)
        # on the item, so the teardown report carries it (junitxml writes properties from there)
        props = dict(item.user_properties)
        if "pto_status" in props:  # a second report of the same test (teardown error after a call)
            item.user_properties[:] = [(k, v) for k, v in item.user_properties if k != "pto_status"]
        item.user_properties.append(("pto_status", status))
        if "pto_check" not in props:
            item.user_properties += [("pto_model", name), ("pto_check", test_id)]
            if verdict is not None:
                item.user_properties += [(k, _junit_value(getattr(verdict, k)))
                                         for k in ("measured", "reference", "tolerance", "unit")]
            protocol = verdict.details.get("protocol") if verdict is not None else None
            item.user_properties.append(("protocol", str(protocol or st.protocol.name)))
        if status == "inconclusive":
            from pto_checks.verdicts import needs_summary

            needs = needs_summary(verdict)
            st.results.model_entry(name)["checks"][test_id]["needs"] = needs
            item.user_properties.append(("pto_needs", needs))
            rep.user_properties.append(("pto_status", status))  # for pytest_report_teststatus


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """An inconclusive check is its own outcome on the terminal: letter ``I``, word INCONCLUSIVE,
    counted as "N inconclusive" in the last line (not as skipped, never as passed)."""
    if report.when == "call" and ("pto_status", "inconclusive") in getattr(report, "user_properties", ()):
        return "inconclusive", "I", ("INCONCLUSIVE", {"yellow": True})
    return None


def _junit_value(x: Any) -> str:
    """A verdict field as a JUnit property value: numbers as str, containers as JSON, None as ''."""
    if x is None:
        return ""
    if isinstance(x, (str, int, float)):
        return str(x)
    return json.dumps(x, default=str)


def _once_per_model_load_error(st: PtoSession, name: str, rep: pytest.TestReport) -> None:
    """A model that cannot load fails (or skips) every one of its tests: the first keeps the full
    message, the others refer to it."""
    if st.load_errors.get(name) is None or rep.passed:
        return
    if name not in st.load_errors_shown:
        st.load_errors_shown.add(name)
        return
    short = f"model {name} could not load (the reason is printed once, at its first test)"
    if rep.skipped and isinstance(rep.longrepr, tuple):
        rep.longrepr = (*rep.longrepr[:2], f"Skipped: {short}")
    elif rep.failed:
        rep.longrepr = short


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    st = session_state(config)
    if st is None:
        return
    is_controller = xdist_worker(config) is None
    if is_controller and st.outcomes and all(o == "skip" for o in st.outcomes) and exitstatus == 0:
        # a gate must not pass by skipping
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        st.all_skipped = True
    if is_controller and st.inconclusive:
        from pto_checks.protocols import InconclusivePolicy

        if st.inconclusive_policy is InconclusivePolicy.FAIL and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            st.inconclusive_failed_run = True
    if is_controller and config.getoption("--update-baseline"):
        st.update_baseline = True
    parts = parts_dir(config)
    if parts is None:
        return
    worker = xdist_worker(config)
    parts.mkdir(parents=True, exist_ok=True)
    st.results.write(parts / f"{worker or 'main'}.json")
    if worker is None:  # the controlling process (or a run without xdist) merges
        _write_outputs(session, st, parts)


def _write_outputs(session: pytest.Session, st: PtoSession, parts: Path) -> None:
    """Merge the parts into ``results.json``, in this order: the baseline (``--update-baseline``)
    first, atomically, before anything that can fail after it; then the report (atomic files);
    then ``results.json`` last, with the exit status the process returns.  A file that cannot be
    written sets the exit status to 3 (pytest's internal error) and is named in the summary; a
    results.json that cannot be replaced is moved aside (it described an earlier run)."""
    from pto_checks import report
    from pto_checks.results import load, write_results

    config = session.config
    out = parts.parent
    prior, st.unreadable_results = already_there(out / "results.json")  # results accumulate
    prior_parts = [prior] if prior is not None else []
    n_prior = len(prior.get("runs", [])) if prior is not None else 0
    data = annotate_integrator_flips(merge(prior_parts + [json.loads(p.read_text())
                                                          for p in sorted(parts.glob("*.json"))]))
    # one runs entry per run, not per xdist worker: the controller's (its protocol label as merged)
    own = st.results.data["runs"][0]
    mine = next((r for r in data["runs"][n_prior:]
                 if (r.get("created"), r.get("command")) == (own["created"], own["command"])), own)
    data["runs"] = data["runs"][:n_prior] + [dict(mine)]
    data["harness"] = dict(st.results.data["harness"])
    st.merged = data
    shutil.rmtree(parts, ignore_errors=True)

    def stamp() -> None:
        data["runs"][-1]["exit_status"] = data["harness"]["exit_status"] = int(session.exitstatus)

    def failed(what: str, exc: BaseException) -> None:
        st.output_errors.append(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    if st.update_baseline:
        stamp()
        try:
            write_results(config.getoption("--baseline"), data)
            st.baseline_written = True
        except OSError as exc:
            failed(f"the baseline {config.getoption('--baseline')} was NOT written", exc)
    try:
        previous = config.getoption("--compare")
        report.build_report(data, out, load(previous) if previous else None)
    except (OSError, ValueError) as exc:
        failed(f"the report in {out} could not be written", exc)
    stamp()
    try:
        write_results(out / "results.json", data)
    except OSError as exc:
        failed(f"{out / 'results.json'} could not be written", exc)
        if (out / "results.json").is_file():
            import os
            import time

            aside = out / f"results.json.stale-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            os.replace(out / "results.json", aside)  # a rename needs no space: no file claims this run
            st.output_errors.append(f"the previous {out / 'results.json'} moved to {aside.name}: it is not this run's")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    st = session_state(config)
    if st is None:
        return
    if st.matrix and xdist_worker(config) is None:
        from pto_checks.report import terminal_matrix

        terminalreporter.section("pto-checks: verdicts (checks x models)")
        for line in terminal_matrix(st.matrix, width=terminalreporter._tw.fullwidth):
            terminalreporter.write_line(line)
    if st.unreadable_results:
        terminalreporter.write_line(f"pto-checks: WARNING: {st.unreadable_results}", red=True)
    if st.load_errors:
        terminalreporter.section("pto-checks: models that could not load")
        for name, err in st.load_errors.items():
            terminalreporter.write_line(f"{name}: {err}")
    if st.all_skipped:
        terminalreporter.section("pto-checks: every check was skipped")
        terminalreporter.write_line("no check ran, so nothing was verified: exit status 1 "
                                    "(see the skip reasons above)")
    if st.inconclusive:
        from pto_checks.protocols import InconclusivePolicy

        terminalreporter.section("pto-checks: inconclusive checks (neither passed nor failed)")
        for model, tid, needs in st.inconclusive:
            terminalreporter.write_line(f"INCONCLUSIVE {model} {tid}: {needs}")
        fails = st.inconclusive_policy is InconclusivePolicy.FAIL
        terminalreporter.write_line(
            f"--inconclusive={st.inconclusive_policy.value}: "
            + ("an undecided check fails the run (exit status 1); decide it with more data (each line above "
               "says what: a longer MD run, --protocol-set md.steps=N; a larger phonon supercell, "
               "--protocol-set phonon.escalation=3,4,5) or accept warnings with --inconclusive=warn" if fails else
               "listed, not failing the run; none of them counts as a pass"))
    if st.baseline_written:
        terminalreporter.write_line(f"pto-checks: baseline written to {config.getoption('--baseline')}")
    if st.output_errors:
        terminalreporter.section("pto-checks: output NOT written (exit status 3)")
        for line in st.output_errors:
            terminalreporter.write_line(line, red=True)
    change = st.results.data["harness"].get("gate", {}).get("protocol_change")
    if change and xdist_worker(config) is None:
        terminalreporter.section("pto-checks: gate run with --allow-protocol-change")
        terminalreporter.write_line(f"this run's protocol differs from the baseline's in: {'; '.join(change)}",
                                    yellow=True)
    flips = {m: e["integrator_artefacts"] for m, e in st.merged.get("models", {}).items()
             if e.get("integrator_artefacts")}
    if flips:
        terminalreporter.section("pto-checks: verdicts that flip between NPT integrators (artefacts)")
        for m, fl in flips.items():
            for f in fl:
                terminalreporter.write_line(f"{m}: {f['check']}: melchionna {f['melchionna']}, mtk {f['mtk']}")
    d = config.getoption("--report")
    if d and xdist_worker(config) is None:
        terminalreporter.write_line(f"pto-checks: results written to {Path(d) / 'results.json'}")
