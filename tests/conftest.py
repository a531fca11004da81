"""Shared fixtures: a real `stepgraph dev` server in a subprocess, on a free port."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harness import Server


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    srv = Server().wait_ready()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def strict_server() -> Iterator[Server]:
    srv = Server("--step-mode", "strict").wait_ready()
    yield srv
    srv.stop()


# Counts that tests report (fault and race outcomes): printed at the end of every run, CI included.
_COUNTS = pytest.StashKey[list[str]]()


@pytest.fixture
def record_counts(request: pytest.FixtureRequest):
    lines = request.config.stash.setdefault(_COUNTS, [])

    def record(name: str, counts: dict) -> None:
        lines.append(f"{name}: {json.dumps(counts)}")

    return record


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    lines = config.stash.get(_COUNTS, [])
    if lines:
        terminalreporter.section("counts")
        for line in lines:
            terminalreporter.write_line(line)
