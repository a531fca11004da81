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
from stepgraph_local import iam
from stepgraph_local.runtime import LocalRuntime

_IAM_LINES = pytest.StashKey[list[str]]()
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


@pytest.hookimpl(trylast=True)  # after the root conftest's ordering by flavour
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("after_suite") is not None)


@pytest.fixture
def iam_report(request: pytest.FixtureRequest):
    """Lines for the end of the run's output (the IAM check's unused permissions)."""
    return request.config.stash.setdefault(_IAM_LINES, [])


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    lines = config.stash.get(_IAM_LINES, [])
    if lines:
        terminalreporter.section("IAM: template.yaml against every AWS call of the run")
        for line in lines:
            terminalreporter.write_line(line)


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
