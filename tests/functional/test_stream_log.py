"""The stream is a log in DynamoDB: a client killed mid-run reconnects through *another* API
instance and gets every event exactly once, in order; silent streams carry heartbeats; entries
expire and the local runtime deletes them; `events` spans Step invocations as one run.

Two API instances run here under uvicorn on the same emulated account, each with its own
Context (boto3 clients, notifier): instance B shares nothing with A but the tables, as a second
API process (or Lambda) would. B polls the log, as API instances on AWS do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from harness import ApiThread
from langgraph_sdk import get_client
from stepgraph.api.runs import create_run
from stepgraph.api.schemas import RunCreate
from stepgraph.engine import new_thread
from stepgraph.engine.context import Context
from stepgraph.engine.runner import EventWriter
from stepgraph.storage import END, EventLog, PollingNotifier, SeqTaken
from stepgraph_local.runtime import LocalRuntime, api_app


@pytest.fixture(scope="module")
def local() -> Iterator[tuple[LocalRuntime, ApiThread, ApiThread]]:
    runtime = LocalRuntime(step_mode="strict").start()
    other = Context(dataclasses.replace(runtime.ctx.settings, heartbeat_seconds=0.2), notifier=PollingNotifier())
    a, b = ApiThread(api_app(runtime.ctx)), ApiThread(api_app(other))
    yield runtime, a, b
    a.stop()
    b.stop()
    runtime.stop()


async def test_killed_client_reconnects_through_another_instance_exactly_once(local):
    runtime, a, b = local
    client_a, client_b = get_client(url=a.url), get_client(url=b.url)
    thread = await client_a.threads.create()
    thread_id = thread["thread_id"]
    received = []
    stream = client_a.runs.stream(
        thread_id,
        "writer",
        input={"count": 40, "interval": 0.02},
        stream_mode=["custom", "values", "updates"],
        stream_resumable=True,
    )
    async for part in stream:
        if part.event == "metadata":
            run_id = part.data["run_id"]
        else:
            received.append(part)
        if sum(p.event == "custom" for p in received) == 8:
            break
    await stream.aclose()  # the client is gone mid-run
    assert (await client_b.runs.get(thread_id, run_id))["status"] == "running"
    last_id = received[-1].id
    rejoined = [p async for p in client_b.runs.join_stream(thread_id, run_id, last_event_id=last_id)]
    assert rejoined[0].event == "metadata"
    combined = received + rejoined[1:]
    assert [p.data["i"] for p in combined if p.event == "custom"] == list(range(40))
    # Exactly the log, once each, in order: what DynamoDB holds for the run, end marker aside.
    log = [e for e in runtime.ctx.events.read(run_id) if e.event != END]
    assert [(int(p.id), p.event, p.data) for p in combined] == [(e.seq, e.event, e.data) for e in log]
    assert (await client_b.runs.get(thread_id, run_id))["status"] == "success"


async def test_silent_stream_sends_heartbeats(local):
    _, _, b = local
    async with httpx.AsyncClient(base_url=b.url, timeout=30) as http:
        thread = (await http.post("/threads", json={})).json()
        lines = []
        async with http.stream(
            "POST",
            f"/threads/{thread['thread_id']}/runs/stream",
            json={"assistant_id": "writer", "input": {"count": 2, "interval": 0.9}, "stream_mode": "custom"},
        ) as resp:
            async for line in resp.aiter_lines():
                lines.append((time.monotonic(), line))
    beats = [t for t, line in lines if line == ": heartbeat"]
    customs = [t for t, line in lines if line == "event: custom"]
    assert len(customs) == 2
    # 0.9 s of silence inside the node at a 0.2 s heartbeat: several comments between the events.
    assert sum(customs[0] < t < customs[1] for t in beats) >= 2


async def test_joining_a_run_whose_log_expired_ends_instead_of_waiting(local):
    runtime, _, b = local
    client = get_client(url=b.url)
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "chain", input={"items": []})
    await client.runs.join(thread_id, run["run_id"])
    runtime.ctx.events.delete_run(run["run_id"])  # what the TTL sweep does a day later
    started = time.monotonic()
    parts = await asyncio.wait_for(
        _collect(client.runs.join_stream(thread_id, run["run_id"], last_event_id="0")), timeout=10
    )
    assert [p.event for p in parts] == ["metadata"]  # nothing left to replay, and the stream ends
    assert time.monotonic() - started < 3  # within a heartbeat or so (0.2 s on this instance)
    assert (await asyncio.wait_for(client.runs.join(thread_id, run["run_id"]), timeout=10))["items"] == ["a", "b", "c"]


async def _collect(stream) -> list:
    return [part async for part in stream]


def test_event_log_entries_expire_and_the_local_runtime_deletes_them(local):
    runtime, _, _ = local
    ctx = runtime.ctx
    assert runtime.ttl_sweeper.is_alive()
    # The event log's TTL is swept (crons' fire records and store items have theirs too).
    assert runtime.ttl_sweeper.ttl_tables()[ctx.settings.events_table] == "expires_at"
    ddb = runtime.aws.client("dynamodb")

    def stored(run_id: str) -> list[dict]:
        return ddb.query(
            TableName=ctx.settings.events_table,
            KeyConditionExpression="run_id = :r",
            ExpressionAttributeValues={":r": {"S": run_id}},
        )["Items"]

    live, dead = str(uuid.uuid4()), str(uuid.uuid4())
    ctx.events.write(live, 1, [("custom", {"n": 1})])
    [item] = stored(live)
    assert abs(int(item["expires_at"]["N"]) - (time.time() + ctx.settings.event_ttl_seconds)) < 5
    expired = EventLog(ctx.clients.dynamodb, ctx.settings.events_table, ttl_seconds=-10)
    expired.write(dead, 1, [("custom", {"n": 1}), ("custom", {"n": 2})])
    assert len(stored(dead)) == 2
    assert ctx.events.read(dead) == []  # expired reads as gone before any sweep (AWS deletes lazily)
    assert [e.data for e in ctx.events.read(live)] == [{"n": 1}]
    assert runtime.ttl_sweeper.sweep_once() >= 2
    assert stored(dead) == [] and len(stored(live)) == 1
    # Far enough in the future, everything has expired.
    runtime.ttl_sweeper.sweep_once(now=time.time() + ctx.settings.event_ttl_seconds + 10)
    assert stored(live) == []


def test_events_mode_spans_step_invocations_as_one_run(local):
    """Strict mode: a Step invocation per superstep, yet one graph start and one end."""
    runtime, _, _ = local
    ctx = runtime.ctx
    thread_id = str(uuid.uuid4())
    new_thread(ctx, thread_id, {})
    run = create_run(
        ctx, thread_id, RunCreate(assistant_id="chain", input={"items": []}, stream_mode=["events", "updates"])
    )
    deadline = time.monotonic() + 15
    while ctx.runs.get(thread_id, run["run_id"])["status"] in ("pending", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    history = runtime.aws.client("stepfunctions").get_execution_history(executionArn=ctx.executions.arn(run["run_id"]))
    steps = [e for e in history["events"] if e.get("stateEnteredEventDetails", {}).get("name") == "Step"]
    assert len(steps) >= 3  # a superstep (or so) per invocation
    log = [e for e in ctx.events.read(run["run_id"]) if e.event != END]
    events = [e.data for e in log if e.event == "events"]
    root = [e["event"] for e in events if e["name"] == "LangGraph"]
    assert root[0] == "on_chain_start" and root.count("on_chain_start") == 1 and root[-1] == "on_chain_end"
    assert [e["name"] for e in events if e["event"] == "on_chain_start" and e["name"] != "LangGraph"] == ["a", "b", "c"]
    assert [e.data for e in log if e.event == "updates"] == [
        {"a": {"items": ["a"]}},
        {"b": {"items": ["b"]}},
        {"c": {"items": ["c"]}},
    ]
    # Graph-level stream parts never leak into `events` as the root's on_chain_stream.
    assert not any(e["event"] == "on_chain_stream" and e["name"] == "LangGraph" for e in events)


def _queries(ctx: Context) -> list[dict]:
    calls: list[dict] = []
    ctx.events.client.meta.events.register("before-call.dynamodb.Query", lambda params, **_: calls.append(params))
    return calls


def test_a_process_that_wrote_a_runs_log_last_appends_without_reading_it(local):
    """Two Lambda containers (Contexts) take turns at one run's log, as strict mode's Step
    invocations land on warm containers: the one that wrote last appends at once; the other
    finds the log moved on, reads where it ends and appends after it. Nothing lost or reordered."""
    runtime, _, _ = local
    a = Context(runtime.ctx.settings, notifier=PollingNotifier())
    b = Context(runtime.ctx.settings, notifier=PollingNotifier())
    run_id, reads = str(uuid.uuid4()), _queries(a)

    def invocation(ctx: Context, *events: str) -> None:
        writer = EventWriter(ctx, run_id)
        for event in events:
            writer.append("updates", event)
        writer.close()

    invocation(a, "a1", "a2")
    assert len(reads) == 1  # a new run: where does its log end?
    invocation(a, "a3")
    assert len(reads) == 1  # a wrote it last: no read
    invocation(b, "b1")
    invocation(a, "a4", "a5")
    assert len(reads) == 2  # a's guess was taken (b wrote since): one read, then the append
    log = a.events.read(run_id)
    assert [(e.seq, e.data) for e in log] == [(1, "a1"), (2, "a2"), (3, "a3"), (4, "b1"), (5, "a4"), (6, "a5")]


def test_two_writers_starting_together_on_a_run_still_conflict(local):
    """The guard against a duplicated invocation is kept: two writers that found the log at the
    same place (neither has a guess) cannot both write there; the second learns it on close."""
    runtime, _, _ = local
    run_id = str(uuid.uuid4())
    first = EventWriter(Context(runtime.ctx.settings, notifier=PollingNotifier()), run_id)
    second = EventWriter(Context(runtime.ctx.settings, notifier=PollingNotifier()), run_id)
    first.append("updates", "first")
    first.close()
    second.append("updates", "second")
    with pytest.raises(SeqTaken):
        second.close()
    assert [(e.seq, e.data) for e in runtime.ctx.events.read(run_id)] == [(1, "first")]
