"""Nothing is lost, left behind or half-written (issue 12, part 3): a rollback removes all its run
wrote, request paths never scan a table, writes stay within DynamoDB's limits, and a deleted
thread leaves no checkpoint, run or object behind. Through the SDK, against the local runtime
in-process, so each test can also read moto's side of things."""

from __future__ import annotations

import importlib.util
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import ApiThread, until
from langgraph_sdk import get_client
from stepgraph_local.emulator import lambda_hook
from stepgraph_local.runtime import LocalRuntime, api_app

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "tests" / "graphs" / "safety.json"


class Invocations:
    """The Step function's handler, counting the invocations in progress (a stopped execution's last
    one runs on until its node returns, as a Lambda does)."""

    def __init__(self) -> None:
        spec = importlib.util.spec_from_file_location("safety_step_app", ROOT / "functions" / "step" / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.handler, self.running, self.lock = module.handler, 0, threading.Lock()

    def __call__(self, event: dict, context: object) -> dict:
        with self.lock:
            self.running += 1
        try:
            return self.handler(event, context)
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture(scope="module")
def local() -> Iterator[tuple[LocalRuntime, ApiThread, Invocations]]:
    runtime = LocalRuntime(config_path=GRAPHS, step_mode="batched").start()
    steps = Invocations()
    lambda_hook.register("StepFunction", steps)
    api = ApiThread(api_app(runtime.ctx))
    yield runtime, api, steps
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
    runtime, api, _ = local
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


async def test_deleting_a_thread_with_a_running_run_stops_it_and_leaves_nothing(local, tmp_path):
    """Bug: deleting a thread left its running run's execution going (and its Lambda billing) with
    nothing to stop it; spilled stream events stayed in the bucket forever."""
    runtime, api, steps = local
    client = get_client(url=api.url)
    s3, bucket = runtime.aws.client("s3"), runtime.ctx.settings.spill_bucket
    thread_id = (await client.threads.create())["thread_id"]
    gate = tmp_path / "gate"
    # Its first superstep's value (400 KB) spills to S3, as a checkpoint value and as stream events.
    run = await client.runs.create(
        thread_id, "hold", input={"gate": str(gate), "big": 400_000}, stream_mode=["values", "updates"]
    )
    run_id = run["run_id"]

    def holding() -> bool:
        return (runtime.ctx.runs.get(thread_id, run_id) or {}).get("execution") is not None and bool(
            _objects(s3, bucket, f"events/{run_id}/")
        )

    until(holding, 20, "the run to hold in its second superstep")
    assert (await client.threads.get_state(thread_id))["next"] == ["hold"]
    assert _objects(s3, bucket, f"checkpoints/{thread_id}/")
    execution = runtime.ctx.runs.get(thread_id, run_id)["execution"]
    sfn = runtime.aws.client("stepfunctions")

    await client.threads.delete(thread_id)
    assert not _objects(s3, bucket, f"events/{run_id}/")  # spilled events went with the log

    gate.touch()  # the node returns now (a Lambda is not stopped mid-call); what it writes must not land
    until(lambda: steps.running == 0, 20, "the stopped run's last Step invocation to end")
    # Cancelled first: its execution was stopped (moto shows it once the Task in progress returns),
    # not left to go on to its next step and finish.
    status = until(
        lambda: (s := sfn.describe_execution(executionArn=execution)["status"]) != "RUNNING" and s, 10, "its end"
    )
    assert status == "ABORTED"
    assert _partition(runtime, thread_id) == []
    assert not _objects(s3, bucket, f"checkpoints/{thread_id}/")
    assert runtime.ctx.runs.list(thread_id) == [] and runtime.ctx.threads.get(thread_id) is None


def test_spilled_stream_events_expire_with_the_event_log(local):
    runtime, _, _ = local
    rules = runtime.aws.client("s3").get_bucket_lifecycle_configuration(Bucket=runtime.ctx.settings.spill_bucket)
    [rule] = [r for r in rules["Rules"] if r["Filter"].get("Prefix") == "events/"]
    assert rule["Status"] == "Enabled"
    assert runtime.ctx.settings.event_ttl_seconds <= rule["Expiration"]["Days"] * 86_400


async def test_one_superstep_of_many_large_stream_events_reaches_the_client(local):
    """Bug: a superstep's stream events went to the log in one transaction of up to 100 items, over
    DynamoDB's 4 MB per transaction once they were large: refused, and the client got none of them."""
    _, api, _ = local
    client = get_client(url=api.url)
    thread_id = (await client.threads.create())["thread_id"]
    parts = [
        p
        async for p in client.runs.stream(
            thread_id, "burst", input={"events": 20, "event_bytes": 300_000}, stream_mode="custom"
        )
    ]
    custom = [p.data for p in parts if p.event == "custom"]
    assert [c["i"] for c in custom] == list(range(20))
    assert all(len(c["pad"]) == 300_000 for c in custom)


async def test_a_run_with_large_metadata_and_a_large_state_checkpoints(local, tmp_path):
    """Bug: a checkpoint item held the run's metadata beside a value of up to 350 KB, so a run with
    300 KB of metadata (a document the API accepts) and a 300 KB state needed a 600 KB item: refused
    by DynamoDB at every retry of its first step."""
    runtime, api, _ = local
    client = get_client(url=api.url)
    thread_id = (await client.threads.create())["thread_id"]
    gate = tmp_path / "gate"
    gate.touch()
    blob = "m" * 300_000
    final = await client.runs.wait(
        thread_id, "hold", input={"gate": str(gate), "big": 300_000}, metadata={"blob": blob}, raise_error=False
    )
    assert final.get("items", [None])[-1] == "held", final
    [run] = await client.runs.list(thread_id)
    assert run["status"] == "success"
    history = await client.threads.get_history(thread_id)
    assert history and all(h["metadata"]["blob"] == blob for h in history if h["metadata"].get("run_id"))
    # Deleted with its thread, spilled metadata included.
    await client.threads.delete(thread_id)
    s3 = runtime.aws.client("s3")
    assert not _objects(s3, runtime.ctx.settings.spill_bucket, f"checkpoints/{thread_id}/")


async def test_oversized_documents_are_refused_before_anything_is_written(local):
    """Bug: a batch of runs queued its first runs (and their threads) before refusing a later one
    too large to store: a 413 that had half happened."""
    _, api, _ = local
    client = get_client(url=api.url)
    thread = await client.threads.create(metadata={"owner": "a"})
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.threads.update(thread["thread_id"], metadata={"blob": "x" * 400_000})
    assert refused.value.response.status_code == 413
    assert (await client.threads.get(thread["thread_id"]))["metadata"] == {"owner": "a"}

    tag = {"batch": str(uuid.uuid4())}
    small = {"assistant_id": "fork", "input": {}, "metadata": tag}
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.create_batch([small, {**small, "input": {"items": ["x" * 400_000]}}])
    assert refused.value.response.status_code == 413
    assert await client.threads.search(metadata=tag) == []


def _objects(s3, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


async def test_search_count_cancel_and_deletes_never_scan_a_table(local, tmp_path):
    """Bug: thread and assistant search and count, bulk cancel and the queue's counts scanned their
    table, and rollback and run delete scanned the checkpoints table: the cost of every such
    request grew with the whole deployment's data, not with what it answers."""
    runtime, api, _ = local
    client = get_client(url=api.url)
    ctx = runtime.ctx
    watched = {ctx.settings.threads_table, ctx.settings.assistants_table, ctx.settings.runs_table}
    watched.add(ctx.settings.checkpoints_table)
    scans: list[str] = []

    def record(params: dict, **_: object) -> None:
        if params.get("TableName") in watched:
            scans.append(params["TableName"])

    events = ctx.clients.dynamodb.meta.events
    events.register("before-parameter-build.dynamodb.Scan", record, unique_id="test-no-scan")
    try:
        mine = [await client.threads.create(metadata={"scan_test": tag}) for tag in ("a", "b", "b")]
        ids = [t["thread_id"] for t in mine]
        assert [t["thread_id"] for t in await client.threads.search(metadata={"scan_test": "b"})] == ids[:0:-1]
        newest = await client.threads.search(limit=2)
        assert [t["thread_id"] for t in newest] == ids[:0:-1]  # newest first, the page only
        assert [t["thread_id"] for t in await client.threads.search(ids=ids, sort_order="asc")] == ids
        assert await client.threads.count(metadata={"scan_test": "b"}) == 2
        assert await client.threads.count() >= 3
        assistant = await client.assistants.create("fork", metadata={"scan_test": "x"})
        assert [a["assistant_id"] for a in await client.assistants.search(metadata={"scan_test": "x"})] == [
            assistant["assistant_id"]
        ]
        assert await client.assistants.count(graph_id="fork") >= 2  # the system assistant and this one

        # Rollback, run delete, bulk cancel, the queue's counts.
        thread_id = ids[0]
        gate = tmp_path / "gate"
        held = await client.runs.create(thread_id, "hold", input={"gate": str(gate)})
        until(lambda: ctx.runs.get(thread_id, held["run_id"])["status"] == "running", 20, "the run to start")
        assert (await client.runs.wait(thread_id, "fork", input={}, multitask_strategy="rollback"))["__interrupt__"]
        queued = await client.runs.create(ids[1], "hold", input={"gate": str(gate)})
        behind = await client.runs.create(ids[1], "hold", input={"gate": str(gate)}, multitask_strategy="enqueue")
        until(lambda: ctx.runs.get(ids[1], queued["run_id"])["status"] == "running", 20, "the run to start")
        async with client.http.client.stream("GET", "/metrics") as resp:
            assert resp.status_code == 200
        assert ctx.runs.with_status(("pending",)) == [ctx.runs.get(ids[1], behind["run_id"])]
        await client.runs.cancel_many(status="all")
        gate.touch()
        assert ctx.runs.with_status(("pending", "running")) == []
        await client.runs.delete(ids[1], behind["run_id"])
    finally:
        events.unregister("before-parameter-build.dynamodb.Scan", unique_id="test-no-scan")
    assert scans == []
