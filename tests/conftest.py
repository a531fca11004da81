"""Shared fixtures: a real `stepgraph dev` server in a subprocess, on a free port, serving the
example graphs with sync nodes or with async nodes: every test that takes a server runs on both."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import reporting
from harness import FLAVORS, Server
from reporting import report_line
from stepgraph_local import iam

STEP_MODES = ("batched", "strict")

# The IAM check's record: every process of the session (pytest-xdist's workers, in-process
# runtimes, `stepgraph dev` servers, the fault tests' cluster) appends the AWS calls each function
# makes to one file (`STEPGRAPH_LOCAL_IAM_LOG`), named here, in the process that starts them all.
_IAM_LOG = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "after_suite: runs after every other test of the session")
    if not os.environ.get(iam.LOG_VARIABLE):  # a log named by the caller is kept as it is
        fd, path = tempfile.mkstemp(prefix="stepgraph-iam-", suffix=".jsonl")
        os.close(fd)
        config.stash[_IAM_LOG] = Path(path)
        os.environ[iam.LOG_VARIABLE] = path


def pytest_unconfigure(config: pytest.Config) -> None:
    log = config.stash.get(_IAM_LOG, None)
    if log is not None:
        os.environ.pop(iam.LOG_VARIABLE, None)
        log.unlink(missing_ok=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under pytest-xdist, test_iam.py runs last on its own worker only, while the other may still
    be making calls: the controller, once every worker is done, holds the whole session's calls
    against template.yaml again, and fails the run on any that AWS would deny."""
    config = session.config
    log = config.stash.get(_IAM_LOG, None)
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None) or log is None:
        return
    calls = iam.read_calls(log)
    if not calls:
        return
    from stepgraph_local import LocalAWS
    from stepgraph_local.iam_check import check
    from stepgraph_local.template import TEMPLATE, load_template

    aws = LocalAWS(TEMPLATE).start()
    try:
        report = check(calls, load_template(TEMPLATE), aws.resolve, region=aws.region)
    finally:
        aws.stop()
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    terminal.write_line("")
    summary = f"IAM, every worker's calls ({len(calls)} distinct): "
    if report.denied:
        terminal.write_line(summary + "calls AWS would deny:\n" + report.denials(), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        terminal.write_line(summary + "all allowed by template.yaml")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every sync-flavour test, then every async one (and within each, batched before strict): a
    session server is started once per flavour, not again each time the items switch flavour."""

    def rank(item: pytest.Item) -> tuple[int, int]:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        flavor, mode = params.get("flavor"), params.get("step_mode")
        return (-1 if flavor is None else FLAVORS.index(flavor), -1 if mode is None else STEP_MODES.index(mode))

    items.sort(key=rank)  # stable: within a flavour and step mode, the collected order


@pytest.fixture(scope="session", params=FLAVORS)
def flavor(request: pytest.FixtureRequest) -> str:
    """`sync` or `async`: how the example graphs' nodes are written (examples/flavors.py)."""
    return request.param


@pytest.fixture(scope="session", params=STEP_MODES)
def step_mode(request: pytest.FixtureRequest) -> str:
    """For modules that run their tests in both step modes (their `server` picks the one)."""
    return request.param


@pytest.fixture(scope="session")
def server(flavor: str) -> Iterator[Server]:
    srv = Server(flavor=flavor).wait_ready()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def strict_server(flavor: str) -> Iterator[Server]:
    srv = Server("--step-mode", "strict", flavor=flavor).wait_ready()
    yield srv
    srv.stop()


# Sections of lines for the end of every run, CI included (tests/reporting.py).
_SECTIONS: dict[str, list[str]] = {}


@pytest.fixture
def record_counts(request: pytest.FixtureRequest):
    def record(name: str, counts: dict) -> None:
        report_line(request, "counts", f"{name}: {json.dumps(counts)}")

    return record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":  # each phase's report carries the item's properties so far
        return
    for key, value in report.user_properties:
        if key == reporting.KEY:
            section, line = value
            _SECTIONS.setdefault(section, []).append(line)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    for section, lines in _SECTIONS.items():
        terminalreporter.section(section)
        for line in lines:
            terminalreporter.write_line(line)
