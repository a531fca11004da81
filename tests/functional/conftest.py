"""Functional fixtures: the local runtime in-process, so tests can read moto's side of things.

And the IAM check's ordering: `test_iam.py` runs last (its worker's last, under pytest-xdist). The
record it reads is set up by tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from reporting import report_line
from stepgraph_local.runtime import LocalRuntime


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
