"""The plugin's session state: one :class:`PtoSession` per pytest run (in the config's stash,
and registered as a plugin so that its own hooks see every report, also from xdist workers)."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pto_checks import models as registry
from pto_checks import validate
from pto_checks.cache import Cache
from pto_checks.plugin.options import DEFAULT_MODEL
from pto_checks.protocols import InconclusivePolicy, Protocol, apply_overrides, get_protocol
from pto_checks.results import Results
from pto_checks.verdicts import BASELINE_SOURCE


@dataclass(eq=False)  # hashable by identity: it is registered as a plugin
class PtoSession:
    """What one pytest run of pto-checks holds: the chosen models and protocol, the cache, the
    results being collected, the baseline, loaded models and their errors, check outcomes and the
    verdict matrix of the run."""

    specs: list[registry.ModelSpec]
    explicit: set[str]
    protocol: Protocol
    cache: Cache
    results: Results
    baseline: dict[str, Any] | None = None
    loaded: dict[str, registry.LoadedModel] = field(default_factory=dict)
    load_errors: dict[str, str] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)  #: pass/fail/skip/error of every check (controller)
    #: model -> check id -> status of this run's checks (controller; also from xdist workers)
    matrix: dict[str, dict[str, str]] = field(default_factory=dict)
    load_errors_shown: set[str] = field(default_factory=set)  #: models whose load error was shown in full
    unreadable_results: str | None = None  #: the report folder's old results.json could not be read
    merged: dict[str, Any] = field(default_factory=dict)  #: the merged results.json (controller)
    all_skipped: bool = False
    inconclusive_policy: InconclusivePolicy = InconclusivePolicy.FAIL  #: ``--inconclusive`` or the protocol's
    #: the inconclusive checks (controller): (model, check id, what would decide it)
    inconclusive: list[tuple[str, str, str]] = field(default_factory=list)
    inconclusive_failed_run: bool = False
    update_baseline: bool = False
    baseline_written: bool = False
    output_errors: list[str] = field(default_factory=list)  #: files that could not be written (controller)
    executor_settings: dict[str, Any] = field(default_factory=dict)  #: --executor and cluster options
    executor: Any = None  #: the MD executor (:meth:`md_executor`)

    def md_executor(self, device: str, notify: Any = None) -> Any:
        """The executor of the MD stage (:mod:`pto_checks.executors`): one per run, started when
        a sweep first has a task to compute (a Dask cluster is not started for cache hits),
        closed at the end of the run."""
        if self.executor is None:
            from pto_checks.executors import Lazy

            self.executor = Lazy(self.executor_settings, device=device, notify=notify)
        return self.executor

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.executor is not None:
            self.executor.close()
            self.executor = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect check outcomes (also from xdist workers: their reports carry the JUnit
        properties) for the all-skipped rule and the terminal verdict matrix."""
        if report.when != "teardown":
            return
        props = dict(report.user_properties)
        if "pto_status" in props:
            self.outcomes.append(props["pto_status"])
            if "pto_model" in props and "pto_check" in props:
                self.matrix.setdefault(props["pto_model"], {})[props["pto_check"]] = props["pto_status"]
        if props.get("pto_status") == "inconclusive":
            self.inconclusive.append((props.get("pto_model", ""), props.get("pto_check", report.nodeid),
                                      props.get("pto_needs", "")))


STATE_KEY = pytest.StashKey[PtoSession]()


def xdist_worker(config: pytest.Config) -> str | None:
    """This process's pytest-xdist worker id (``gw0`` ...), or None in the controlling process or a
    run without xdist.  Read from the config (``workerinput``), not from ``PYTEST_XDIST_WORKER``,
    which a pytest started from inside a worker (pytester, ``pto-checks run``) inherits."""
    wi = getattr(config, "workerinput", None)
    return None if wi is None else str(wi.get("workerid"))


def session_state(config: pytest.Config) -> PtoSession | None:
    """The run's :class:`PtoSession` (None before ``pytest_configure``)."""
    return config.stash.get(STATE_KEY, None)


def state(request: pytest.FixtureRequest) -> PtoSession:
    return request.config.stash[STATE_KEY]


def parts_dir(config: pytest.Config) -> Path | None:
    """Where xdist workers write their partial results (under ``--report DIR``)."""
    d = config.getoption("--report")
    return Path(d) / ".parts" if d else None


def configure(config: pytest.Config) -> PtoSession:
    """Read the options, load model files and the baseline, and create the session state."""
    file_models: list[str] = []  # checked when no --model is given
    for f in config.getoption("--model-file") or []:
        try:
            file_models += [s.name for s in registry.load_model_file(f)]
        except (OSError, KeyError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise pytest.UsageError(f"--model-file {f}: {type(exc).__name__}: {first}") from None
    try:
        protocol = get_protocol(config.getoption("--protocol"))
        protocol = apply_overrides(protocol, config.getoption("--protocol-set") or [])
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    requested = config.getoption("--model") or file_models or [DEFAULT_MODEL]
    try:
        specs = registry.specs_for(requested)
    except registry.ModelUnavailable as exc:
        raise pytest.UsageError(str(exc)) from None
    try:  # paths, device, model files and the baseline: refused now, before any work (exit status 4)
        startup = validate.check_startup(config.getoption, specs)
    except validate.OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    explicit = {s.name for s in specs} - (
        set(registry.available_names()) if any("all" in r.split(",") for r in requested) else set()
    )
    parts = parts_dir(config)
    if parts is not None and xdist_worker(config) is None:
        shutil.rmtree(parts, ignore_errors=True)  # stale parts of an earlier run
    cache_root = config.getoption("--pto-cache")
    if cache_root is None:
        cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
        cache_root = str(cache.mkdir("pto-checks")) if cache is not None else ".pto_cache"
    baseline = None
    bpath = config.getoption("--baseline")
    if config.getoption("--update-baseline") and not (bpath and config.getoption("--report")):
        raise pytest.UsageError("--update-baseline needs --baseline FILE (where to write it) and "
                                "--report DIR (whose results.json becomes the baseline)")
    gate: dict[str, Any] = {}
    if bpath and not config.getoption("--update-baseline"):
        baseline = startup["baseline"]
        baseline[BASELINE_SOURCE] = str(bpath)
        gate = {"baseline": str(bpath), "protocol_change": _protocol_change(config, bpath, baseline, protocol)}
    policy = InconclusivePolicy(config.getoption("--inconclusive") or protocol.inconclusive)
    st = PtoSession(specs=specs, explicit=explicit, protocol=protocol,
                    cache=Cache(cache_root, enabled=not config.getoption("--recompute")),
                    results=Results(protocol.to_dict()), baseline=baseline, inconclusive_policy=policy,
                    executor_settings=_executor_settings(config))
    st.cache.notify = visible_line(config)
    st.results.data["harness"]["inconclusive_policy"] = policy.value
    if gate:
        st.results.data["harness"]["gate"] = gate
    config.stash[STATE_KEY] = st
    config.pluginmanager.register(st, "pto-checks-session")
    return st


def visible_line(config: pytest.Config):
    """A function that prints one line on the terminal past pytest's output capture (a waiting
    process's messages must be seen while it waits, not in the captured output of a test): through
    the terminal reporter in the controlling process, to the real stderr in an xdist worker."""
    import sys

    def write(line: str) -> None:
        capman = config.pluginmanager.getplugin("capturemanager")
        tr = config.pluginmanager.getplugin("terminalreporter")
        ctx = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
        with ctx:
            if tr is not None and xdist_worker(config) is None:
                tr.write_line(line, yellow=True)
            else:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

    return write


def _protocol_change(config: pytest.Config, bpath: str, baseline: dict[str, Any], protocol: Protocol) -> list[str]:
    """The fields in which this run's protocol differs from the baseline's; a usage error unless
    ``--allow-protocol-change`` (then they are returned, to be shown in the report)."""
    from pto_checks.protocols import protocol_differences

    diffs = protocol_differences(baseline.get("protocol"), protocol.to_dict())
    if diffs and not config.getoption("--allow-protocol-change"):
        more = f" and {len(diffs) - 6} more" if len(diffs) > 6 else ""
        raise pytest.UsageError(
            f"--baseline {bpath}: this run's protocol ({protocol.name}) differs from the baseline's in "
            f"{'; '.join(diffs[:6])}{more}: gate with the baseline's protocol (its --protocol and --protocol-set), "
            "or pass --allow-protocol-change (the differences are then printed in the report)")
    return diffs


def _executor_settings(config: pytest.Config) -> dict[str, Any]:
    """The executor options, checked before any work starts."""
    from pto_checks.executors import executor_settings, wants_dask

    s = executor_settings(lambda k: config.getoption(k))
    try:
        dask = wants_dask(s)
        if s.get("cluster_file") or s.get("cluster"):
            from pto_checks.executors.clusters import ClusterSettings

            ClusterSettings.from_settings(s)
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"executor options: {exc}") from None
    if dask:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise pytest.UsageError("--executor dask needs distributed: pip install 'pto-checks[cluster]'") from None
        if (config.getoption("numprocesses", None) and not s.get("dask_scheduler")):
            raise pytest.UsageError("--executor dask with pytest-xdist (-n) would start one Dask cluster per "
                                    "xdist worker: drop -n (the Dask workers run the MD in parallel), or "
                                    "start one scheduler and pass --dask-scheduler ADDRESS")
    return s
