"""Every stream mode the SDK accepts, through langgraph-sdk: shapes, subgraph event names, token
streaming while a node runs, resumable streams, and on_disconnect. (Reconnecting through
another API instance, heartbeats and the log's TTL: tests/functional/test_stream_log.py.)"""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise

import pytest
from langgraph_sdk import get_client

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest.fixture
def server(request, step_mode, server):
    """Both step modes: many supersteps per Step invocation, or one (each resumed from its checkpoint)."""
    return server if step_mode == "batched" else request.getfixturevalue("strict_server")


HI = {"messages": [{"role": "user", "content": "one two three four five"}]}
REPLY = "You said: one two three four five"


async def _stream(client, graph: str, input, **kwargs) -> list[tuple[str, object]]:
    thread = await client.threads.create()
    return [(p.event, p.data) async for p in client.runs.stream(thread["thread_id"], graph, input=input, **kwargs)]


async def test_a_run_without_stream_mode_streams_values(server):
    """The peer's default mode, for clients that send no `stream_mode` (only the SDK always does)."""
    import httpx

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        thread = (await http.post("/threads", json={})).json()
        body = {"assistant_id": "chain", "input": {"items": []}}
        stream = await http.post(f"/threads/{thread['thread_id']}/runs/stream", json=body)
    events = [line.removeprefix("event: ") for line in stream.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "metadata" and events.count("values") == 4, events
    data = [line.removeprefix("data: ") for line in stream.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == '{"items":["a","b","c"]}', stream.text[-200:]


async def test_graph_stream_modes_in_one_run(server):
    client = get_client(url=server.url)
    modes = ["values", "updates", "custom", "tasks", "checkpoints", "debug"]
    parts = await _stream(client, "writer", {"count": 3}, stream_mode=modes)
    assert parts[0][0] == "metadata"
    by_mode: dict[str, list] = {}
    for event, data in parts[1:]:
        by_mode.setdefault(event, []).append(data)
    assert set(by_mode) == set(modes)
    assert by_mode["values"] == [{"count": 3}, {"count": 3, "sent": 3}]
    assert by_mode["updates"] == [{"emit": {"sent": 3}}]
    assert [c["i"] for c in by_mode["custom"]] == [0, 1, 2]
    start, result = by_mode["tasks"]
    assert start["name"] == result["name"] == "emit" and start["input"] == {"count": 3}
    assert result["result"] == {"sent": 3} and result["error"] is None
    checkpoints = by_mode["checkpoints"]
    assert [c["next"] for c in checkpoints] == [["__start__"], ["emit"], []]
    assert checkpoints[-1]["values"] == {"count": 3, "sent": 3}
    assert [d["type"] for d in by_mode["debug"]] == ["checkpoint", "checkpoint", "task", "task_result", "checkpoint"]
    last = by_mode["debug"][-1]["payload"]
    # The peer's debug checkpoints carry checkpoint / parent_checkpoint besides LangGraph's config.
    assert last["checkpoint"]["checkpoint_id"] == checkpoints[-1]["config"]["configurable"]["checkpoint_id"]
    assert last["parent_checkpoint"]["checkpoint_id"] == checkpoints[-2]["config"]["configurable"]["checkpoint_id"]
    # Custom events come while the node runs: before its update and the values after it.
    order = [e for e, _ in parts if e in ("custom", "updates")]
    assert order == ["custom", "custom", "custom", "updates"]


async def test_messages_tuple_tokens_arrive_while_the_node_runs(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    arrivals: list[tuple[float, str, object]] = []
    async for part in client.runs.stream(
        thread["thread_id"],
        "chat",
        input=HI,
        stream_mode=["messages-tuple", "updates"],
        config={"configurable": {"token_delay": 0.1}},
    ):
        arrivals.append((time.monotonic(), part.event, part.data))
    tokens = [(t, data) for t, event, data in arrivals if event == "messages"]
    streamed = [(t, m) for t, (m, meta) in tokens if m["type"] == "AIMessageChunk"]
    assert "".join(m["content"] for _, m in streamed) == REPLY
    assert all(meta["langgraph_node"] in ("respond", "sign") for _, (_, meta) in tokens)
    node_done = next(t for t, event, data in arrivals if event == "updates" and "respond" in data)
    # 9 tokens 0.1 s apart: the first reaches the client ~0.8 s before the node returns, and
    # they arrive spread out, not in one burst at the end.
    assert node_done - streamed[0][0] > 0.5
    gaps = [b[0] - a[0] for a, b in pairwise(streamed)]
    assert sum(g > 0.05 for g in gaps) >= 6
    # `sign` returns a whole message, which messages-tuple reports once, complete.
    assert [m["content"] for _, (m, _) in tokens if m["type"] == "ai"] == ["Anything else?"]


async def test_messages_v1_metadata_partial_complete(server):
    client = get_client(url=server.url)
    parts = await _stream(client, "chat", HI, stream_mode="messages", config={"configurable": {"token_delay": 0}})
    events = [e for e, _ in parts[1:]]
    assert set(events) == {"messages/metadata", "messages/partial", "messages/complete"}
    metadata = [d for e, d in parts if e == "messages/metadata"]
    assert len(metadata) == 2  # one per message: the streamed answer and the signature
    streamed_id, signed_id = (next(iter(m)) for m in metadata)
    assert metadata[0][streamed_id]["metadata"]["langgraph_node"] == "respond"
    partials = [d[0] for e, d in parts if e == "messages/partial"]
    # Each partial is the message so far (accumulated chunks), as a whole message.
    contents = [p["content"] for p in partials]
    assert all(b.startswith(a) for a, b in pairwise(contents))
    assert contents[-1] == REPLY and all(p["id"] == streamed_id and p["type"] == "ai" for p in partials)
    [[complete]] = [d for e, d in parts if e == "messages/complete"]
    assert complete["content"] == "Anything else?" and complete["id"] == signed_id
    assert events.index("messages/metadata") == 0


async def test_events_mode(server):
    client = get_client(url=server.url)
    parts = await _stream(client, "chat", HI, stream_mode="events", config={"configurable": {"token_delay": 0}})
    events = [d for e, d in parts if e == "events"]
    assert {e for e, _ in parts[1:]} == {"events"}
    assert events[0]["event"] == "on_chain_start" and events[0]["name"] == "LangGraph"
    assert events[-1]["event"] == "on_chain_end" and events[-1]["name"] == "LangGraph"
    kinds = {(e["event"], e["name"]) for e in events}
    assert ("on_chain_start", "respond") in kinds and ("on_chat_model_start", "EchoChatModel") in kinds
    tokens = [e["data"]["chunk"]["content"] for e in events if e["event"] == "on_chat_model_stream"]
    assert "".join(tokens) == REPLY
    assert events[-1]["data"]["output"]["messages"][-1]["content"] == "Anything else?"
    assert not any("langsmith:hidden" in (e.get("tags") or []) for e in events)


async def test_stream_subgraphs_names_events_by_namespace(server):
    client = get_client(url=server.url)
    deep = await _stream(client, "nested", {"items": []}, stream_mode=["updates"], stream_subgraphs=True)
    names = [e for e, _ in deep[1:]]
    child = [n for n in names if n.startswith("updates|child:")]
    assert len(set(child)) == 1 and len(child) == 2  # think, then the interrupt
    child_data = [d for e, d in deep[1:] if e == child[0]]
    assert child_data[0] == {"think": {"items": ["think"]}} and "__interrupt__" in child_data[1]
    assert names[0] == "updates" and names[-1] == "updates"  # the parent's before and interrupt
    flat = await _stream(client, "nested", {"items": []}, stream_mode=["updates"])
    assert all(e == "updates" for e, _ in flat[1:]) and len(flat) == 3
    chat = await _stream(
        client,
        "chat",
        HI,
        stream_mode=["messages-tuple"],
        stream_subgraphs=True,
        config={"configurable": {"token_delay": 0}},
    )
    assert {e for e, _ in chat[1:]} == {"messages"}  # no namespace at the root


async def test_resumable_stream_join_with_last_event_id(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    seen: list = []
    async for part in client.runs.stream(
        thread_id,
        "writer",
        input={"count": 30, "interval": 0.02},
        stream_mode=["custom", "values"],
        stream_resumable=True,
    ):
        if part.event == "metadata":
            run_id = part.data["run_id"]
            continue
        seen.append(part)
        if len(seen) == 5:
            break  # the client goes away mid-run
    assert all(p.id for p in seen)
    rest = [p async for p in client.runs.join_stream(thread_id, run_id, last_event_id=seen[-1].id)]
    assert rest[0].event == "metadata"
    combined = seen + rest[1:]
    custom = [p.data["i"] for p in combined if p.event == "custom"]
    assert custom == list(range(30))  # every event once, in order
    ids = [int(p.id) for p in combined]
    assert ids == sorted(set(ids))
    # A join that asks for a subset of the run's modes gets only those.
    only = [p async for p in client.runs.join_stream(thread_id, run_id, last_event_id="0", stream_mode=["values"])]
    assert {p.event for p in only} == {"metadata", "values"} and len(only) == 3


async def test_on_disconnect_cancel_cancels_the_run(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    count = 0
    async for part in client.runs.stream(
        thread["thread_id"], "loop", input={"steps": 100000}, stream_mode="values", on_disconnect="cancel"
    ):
        if part.event == "metadata":
            run_id = part.data["run_id"]
        count += 1
        if count == 4:
            break
    deadline = time.monotonic() + 5
    while (run := await client.runs.get(thread["thread_id"], run_id))["status"] != "interrupted":
        assert time.monotonic() < deadline, run["status"]
        await asyncio.sleep(0.05)
    # Without it, a run outlives its stream (the peer's default, on_disconnect="continue").
    thread = await client.threads.create()
    async for part in client.runs.stream(thread["thread_id"], "loop", input={"steps": 30}, stream_mode="values"):
        if part.event == "metadata":
            run_id = part.data["run_id"]
            break
    assert (await client.runs.join(thread["thread_id"], run_id)) == {"count": 30, "steps": 30}
    assert (await client.runs.get(thread["thread_id"], run_id))["status"] == "success"
