"""Every function handles its sample event (events/, as `sam local invoke -e` takes them): the
handlers from the source tree, in-process against the emulated AWS of the local runtime."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sample_events import EVENTS, ROOT, SCENARIOS, Stage, functions
from starlette.testclient import TestClient
from stepgraph_local.runtime import LocalRuntime, api_app

FUNCTIONS = functions(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def stage() -> Iterator[Stage]:
    runtime = LocalRuntime().start()  # the template's defaults (batched steps)
    try:
        with TestClient(api_app(runtime.ctx), base_url="http://stepgraph.test") as client:  # as the API function
            yield Stage(runtime.ctx, runtime.aws.client("lambda"), FUNCTIONS, client.request)
    finally:
        runtime.stop()


def test_every_function_has_a_sample_event_and_no_event_is_orphaned():
    assert {p.stem for p in EVENTS.glob("*.json")} == set(FUNCTIONS)
    assert set(SCENARIOS) == set(FUNCTIONS), "each function's sample event needs a scenario in sample_events.py"


@pytest.mark.parametrize("folder", sorted(FUNCTIONS))
def test_handler_handles_its_sample_event(stage: Stage, folder: str):
    SCENARIOS[folder](stage)
