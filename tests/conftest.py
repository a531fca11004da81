"""Shared fixtures: a real `stepgraph dev` server in a subprocess, on a free port, serving the
example graphs with sync nodes or with async nodes: every test that takes a server runs on both."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import reporting
from harness import FLAVORS, Server
from reporting import report_line

STEP_MODES = ("batched", "strict")


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
