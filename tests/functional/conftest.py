"""Functional fixtures: the local runtime in-process, so tests can read moto's side of things.

And the IAM check's record: every process of the session (in-process runtimes, `stepgraph dev`
servers, the fault tests' cluster) appends the AWS calls each function makes to one file
(`STEPGRAPH_LOCAL_IAM_LOG`), and `test_iam.py`, run last, holds them against template.yaml.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from reporting import report_line
from stepgraph_local import iam
from stepgraph_local.runtime import LocalRuntime

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
    terminal.ensure_newline()
    summary = f"IAM, every worker's calls ({len(calls)} distinct): "
    if report.denied:
        terminal.write_line(summary + "calls AWS would deny:\n" + report.denials(), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        terminal.write_line(summary + "all allowed by template.yaml")


@pytest.hookimpl(trylast=True)  # after the root conftest's ordering by flavour
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("after_suite") is not None)


@pytest.fixture
def iam_report(request: pytest.FixtureRequest):
    """Lines for the end of the run's output (the IAM check's unused permissions)."""

    class Lines:
        def append(self, line: str) -> None:
            report_line(request, "IAM: template.yaml against every AWS call of the run", line)

        def extend(self, lines: list[str]) -> None:
            for line in lines:
                self.append(line)

    return Lines()


@pytest.fixture
def strict_runtime() -> Iterator[LocalRuntime]:
    runtime = LocalRuntime(step_mode="strict").start()
    yield runtime
    runtime.stop()


@pytest.fixture
def batched_runtime() -> Iterator[LocalRuntime]:
    runtime = LocalRuntime(step_mode="batched").start()
    yield runtime
    runtime.stop()
