"""What tests report for the end of the run (fault and race outcomes, build sizes, the IAM check's
unused permissions), a section per title. Carried in each test's report (`user_properties`), so
it reaches the terminal from pytest-xdist's workers too; tests/conftest.py prints it."""

from __future__ import annotations

import pytest

KEY = "stepgraph-report"


def report_line(request: pytest.FixtureRequest, section: str, line: str) -> None:
    request.node.user_properties.append((KEY, [section, line]))
