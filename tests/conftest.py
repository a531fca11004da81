"""Shared fixtures: a real `stepgraph dev` server in a subprocess, on a free port, serving the
example graphs with sync nodes or with async nodes: every test that takes a server runs on both."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harness import FLAVORS, Server


@pytest.fixture(scope="session", params=FLAVORS)
def flavor(request: pytest.FixtureRequest) -> str:
    """`sync` or `async`: how the example graphs' nodes are written (examples/flavors.py)."""
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
