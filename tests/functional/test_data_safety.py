"""Nothing is lost, left behind or half-written (issue 12, part 3): a rollback removes all its run
wrote, request paths never scan a table, writes stay within DynamoDB's limits, and a deleted
thread leaves no checkpoint, run or object behind. Through the SDK, against the local runtime
in-process, so each test can also read moto's side of things."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ApiThread, until
from langgraph_sdk import get_client
from stepgraph_local.runtime import LocalRuntime, api_app

GRAPHS = Path(__file__).resolve().parents[1] / "graphs" / "safety.json"


@pytest.fixture(scope="module")
def local() -> Iterator[tuple[LocalRuntime, ApiThread]]:
    runtime = LocalRuntime(config_path=GRAPHS, step_mode="batched").start()
    api = ApiThread(api_app(runtime.ctx))
    yield runtime, api
    api.stop()
    runtime.stop()


def _partition(runtime: LocalRuntime, thread_id: str) -> list[dict]:
    """Every item of the thread's partition of the checkpoints table."""
    ddb = runtime.aws.client("dynamodb")
    resp = ddb.query(
        TableName=runtime.ctx.settings.checkpoints_table,
        KeyConditionExpression="pk = :t",
        ExpressionAttributeValues={":t": {"S": thread_id}},
        ConsistentRead=True,
    )
    assert "LastEvaluatedKey" not in resp
    return resp["Items"]


async def test_rollback_of_a_resume_removes_its_writes_on_the_parked_checkpoint(local, tmp_path):
    """Bug: a resume's pending writes went on the checkpoint it resumed (its predecessor's), untagged,
    so rolling the resume back left them there, and the next resume reused the rolled-back answer."""
    runtime, api = local
    client = get_client(url=api.url)
    thread_id = (await client.threads.create())["thread_id"]
    parked = await client.runs.wait(thread_id, "fork", input={"items": []})
    ids = {i["value"]: i["id"] for i in parked["__interrupt__"]}
    parked_checkpoint = (await client.threads.get_state(thread_id))["checkpoint"]["checkpoint_id"]

    gate = tmp_path / "gate"
    resume = {ids["left?"]: "first", ids["right?"]: {"answer": "first", "gate": str(gate)}}
    doomed = await client.runs.create(thread_id, "fork", command={"resume": resume})

    def left_stored() -> bool:  # `left` finished and its result is stored; `right` still runs
        return any(
            item.get("channel", {}).get("S") == "items" and item["checkpoint_id"]["S"] == parked_checkpoint
            for item in _partition(runtime, thread_id)
        )

    until(left_stored, 20, "the resumed run's first result")
    again = {ids["left?"]: "second", ids["right?"]: "second"}
    final = await client.runs.wait(thread_id, "fork", command={"resume": again}, multitask_strategy="rollback")
    gate.touch()  # let the rolled-back node's thread end

    assert sorted(final["items"]) == ["left:second", "right:second"]  # not the rolled-back "left:first"
    assert doomed["run_id"] not in {r["run_id"] for r in await client.runs.list(thread_id)}
    history = await client.threads.get_history(thread_id, limit=100)
    assert doomed["run_id"] not in {h["metadata"].get("run_id") for h in history}
    for snapshot in history:
        for task in snapshot["tasks"]:
            assert "first" not in repr(task.get("result")), "a rolled-back write is still on a checkpoint"
