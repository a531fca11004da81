"""Functional fixtures: the local runtime in-process, so tests can read moto's side of things."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stepgraph_local.runtime import LocalRuntime


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
