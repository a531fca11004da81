"""The foundation, driven the way users drive it: langgraph-sdk against a running local server."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise

import httpx
import pytest
from langgraph_sdk import get_client

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_wait_returns_final_state_of_three_node_graph(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "chain", input={"items": ["x"]})
    assert result == {"items": ["x", "a", "b", "c"]}
    thread = await client.threads.get(thread["thread_id"])
    assert thread["status"] == "idle"
    assert thread["values"] == {"items": ["x", "a", "b", "c"]}
    assert thread["metadata"]["graph_id"] == "chain"


async def test_stream_values_and_updates_in_peer_order(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    parts = [
        (p.event, p.data)
        async for p in client.runs.stream(
            thread["thread_id"], "chain", input={"items": ["x"]}, stream_mode=["values", "updates"]
        )
    ]
    assert parts[0][0] == "metadata"
    assert set(parts[0][1]) >= {"run_id", "attempt"}
    # The peer's order: values after each superstep (the input first), updates before its values.
    assert parts[1:] == [
        ("values", {"items": ["x"]}),
        ("updates", {"a": {"items": ["a"]}}),
        ("values", {"items": ["x", "a"]}),
        ("updates", {"b": {"items": ["b"]}}),
        ("values", {"items": ["x", "a", "b"]}),
        ("updates", {"c": {"items": ["c"]}}),
        ("values", {"items": ["x", "a", "b", "c"]}),
    ]
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == parts[-1][1]
    assert state["next"] == []


async def test_history_has_one_checkpoint_per_superstep(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "chain", input={"items": ["x"]})
    history = await client.threads.get_history(thread["thread_id"])
    # input (-1), then a, b, c, and the final checkpoint: newest first, as the peer lists them.
    assert [h["metadata"]["step"] for h in history] == [3, 2, 1, 0, -1]
    assert [h["next"] for h in history] == [[], ["c"], ["b"], ["a"], ["__start__"]]
    assert history[0]["values"] == {"items": ["x", "a", "b", "c"]}
    state = await client.threads.get_state(thread["thread_id"])
    assert state["checkpoint"]["checkpoint_id"] == history[0]["checkpoint"]["checkpoint_id"]
    assert history[1]["checkpoint"]["checkpoint_id"] == history[0]["parent_checkpoint"]["checkpoint_id"]


async def test_stream_ids_strictly_increase(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        thread = (await http.post("/threads", json={})).json()
        ids = []
        async with http.stream(
            "POST",
            f"/threads/{thread['thread_id']}/runs/stream",
            json={"assistant_id": "loop", "input": {"steps": 20}, "stream_mode": ["values", "updates"]},
        ) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for line in resp.aiter_lines():
                if line.startswith("id: "):
                    ids.append(int(line[4:]))
    assert len(ids) == 41  # 21 values + 20 updates
    assert all(b > a for a, b in pairwise(ids))


async def test_ok_answers_while_a_run_is_in_flight(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "loop", input={"steps": 400})
    latencies = []
    async with httpx.AsyncClient(base_url=server.url) as http:
        for _ in range(5):
            start = time.perf_counter()
            resp = await http.get("/ok")
            latencies.append(time.perf_counter() - start)
            assert resp.json() == {"ok": True}
        current = await client.runs.get(thread["thread_id"], run["run_id"])
    assert current["status"] in ("pending", "running")  # /ok answered during the run
    assert max(latencies) < 1.0
    await client.runs.join(thread["thread_id"], run["run_id"])
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"


async def test_background_run_get_list_join(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "chain", input={"items": []})
    assert run["status"] == "pending"
    result = await client.runs.join(thread["thread_id"], run["run_id"])
    assert result == {"items": ["a", "b", "c"]}
    got = await client.runs.get(thread["thread_id"], run["run_id"])
    assert got["status"] == "success"
    runs = await client.runs.list(thread["thread_id"])
    assert [r["run_id"] for r in runs] == [run["run_id"]]


async def test_runs_on_one_thread_accumulate(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "chain", input={"items": ["1"]})
    result = await client.runs.wait(thread["thread_id"], "chain", input={"items": ["2"]})
    assert result == {"items": ["1", "a", "b", "c", "2", "a", "b", "c"]}


async def test_interrupt_stops_run_and_thread_is_interrupted(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "approval", input={"items": []})
    assert result["items"] == ["draft"]
    [interrupt] = result["__interrupt__"]
    assert interrupt["value"] == {"question": "approve?", "items": ["draft"]}
    assert interrupt["id"]
    thread = await client.threads.get(thread["thread_id"])
    assert thread["status"] == "interrupted"
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["review"]
    assert state["interrupts"][0]["value"]["question"] == "approve?"
    runs = await client.runs.list(thread["thread_id"])
    assert runs[0]["status"] == "success"  # as the peer reports a run stopped by interrupt()


async def test_error_run(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "failing", input={}, raise_error=False)
    assert result == {"__error__": {"error": "ValueError", "message": "boom: this node always fails"}}
    events = [p async for p in client.runs.stream(thread["thread_id"], "failing", input={})]
    assert events[-1].event == "error"
    assert events[-1].data["error"] == "ValueError"
    thread = await client.threads.get(thread["thread_id"])
    assert thread["status"] == "error"


async def test_stateless_runs(server):
    client = get_client(url=server.url)
    assert await client.runs.wait(None, "chain", input={"items": []}) == {"items": ["a", "b", "c"]}
    events = [p.event async for p in client.runs.stream(None, "chain", input={"items": []})]
    assert events[0] == "metadata" and events.count("values") == 4


async def test_cancel_running_run(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "loop", input={"steps": 100000})
    await asyncio.sleep(0.3)
    await client.runs.cancel(thread["thread_id"], run["run_id"])
    got = await client.runs.get(thread["thread_id"], run["run_id"])
    assert got["status"] == "interrupted"
    await client.runs.join(thread["thread_id"], run["run_id"])
    # Nothing after the cancel: the thread's checkpoints stop growing.
    before = len(await client.threads.get_history(thread["thread_id"], limit=1000))
    await asyncio.sleep(0.5)
    assert len(await client.threads.get_history(thread["thread_id"], limit=1000)) == before
