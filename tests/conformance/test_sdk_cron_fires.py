"""Crons fire on time, locally, through the deployed code path: the local runtime fires the
emulated EventBridge Scheduler's schedule, whose target (the cron function) queues the run. A
thread cron and a stateless cron on `* * * * *` both fire within 65 s of their minute and their
runs succeed. The suite's one real-time cron wait: its own file, so pytest-xdist runs it beside
other files."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cleanup import removing_what_is_created
from langgraph_sdk import get_client

pytestmark = pytest.mark.asyncio(loop_scope="function")

LATE = timedelta(seconds=65)


@pytest.fixture
def url(request: pytest.FixtureRequest, flavor: str) -> str:
    if flavor != "sync":
        pytest.skip("crons do not depend on how the graph's nodes are written: one wait is enough")
    return str(request.getfixturevalue("server").url)


async def test_a_thread_cron_and_a_stateless_cron_fire_within_65_s_of_their_minute(url):
    with removing_what_is_created(url):  # the threads and crons made here, for later tests' counts
        await _both_fire(url)


async def _both_fire(url: str) -> None:
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    on_thread = await client.crons.create_for_thread(thread_id, "chain", schedule="* * * * *", input={"items": ["t"]})
    stateless = await client.crons.create(
        "chain", schedule="* * * * *", input={"items": ["s"]}, on_run_completed="keep", metadata={"kind": "stateless"}
    )
    due = max(datetime.fromisoformat(c["next_run_date"]) for c in (on_thread, stateless))

    async def first_run(cron: dict[str, Any]) -> dict[str, Any] | None:
        if cron["thread_id"]:
            runs = await client.runs.list(cron["thread_id"])
        else:
            threads = await client.threads.search(metadata={"cron_id": cron["cron_id"]})
            runs = [r for t in threads for r in await client.runs.list(t["thread_id"])]
        done = [r for r in runs if r["status"] == "success"]
        return min(done, key=lambda r: r["created_at"]) if done else None

    try:
        deadline = time.monotonic() + max(0.0, (due + LATE - datetime.now(UTC)).total_seconds())
        runs: dict[str, dict[str, Any] | None] = {}
        while time.monotonic() < deadline:
            runs = {c["cron_id"]: await first_run(c) for c in (on_thread, stateless)}
            if all(runs.values()):
                break
            await asyncio.sleep(0.5)
    finally:
        for cron in (on_thread, stateless):
            await client.crons.delete(cron["cron_id"])
    assert all(runs.values()), f"not every cron fired and succeeded within {LATE} of {due}: {runs}"
    for cron in (on_thread, stateless):
        run = runs[cron["cron_id"]]
        assert run is not None and run["metadata"]["cron_id"] == cron["cron_id"]
        due_at, fired = datetime.fromisoformat(cron["next_run_date"]), datetime.fromisoformat(run["created_at"])
        assert due_at <= fired <= due_at + LATE, (due_at, fired)
    assert (await client.threads.get_state(thread_id))["values"]["items"][:4] == ["t", "a", "b", "c"]
