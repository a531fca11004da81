"""Every public method of langgraph-sdk's assistants, threads and runs clients, called against the
server with valid arguments and checked the way a user would notice. The methods are enumerated
from the installed SDK, so a method added in a new SDK fails `test_every_sdk_method_is_covered`
until a call for it joins the table below."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

pytestmark = pytest.mark.asyncio(loop_scope="function")

NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
CHAIN_ID = str(uuid.uuid5(NAMESPACE, "chain"))
NESTED_ID = str(uuid.uuid5(NAMESPACE, "nested"))
DONE = {"items": ["a", "b", "c"]}
TIMEOUT = 30

Call = Callable[..., Awaitable[None]]
CALLS: dict[str, dict[str, Call]] = {"assistants": {}, "threads": {}, "runs": {}}


def covers(resource: str, method: str):
    def register(fn: Call) -> Call:
        CALLS[resource][method] = fn
        return fn

    return register


async def _thread(client) -> str:
    return (await client.threads.create())["thread_id"]


async def _finished_thread(client) -> str:
    thread_id = await _thread(client)
    assert await client.runs.wait(thread_id, "chain", input={"items": []}) == DONE
    return thread_id


async def _long_run(client, thread_id: str) -> dict:
    """A run that keeps going until cancelled (a million supersteps)."""
    return await client.runs.create(thread_id, "loop", input={"steps": 1_000_000})


async def _status_becomes(client, thread_id: str, run_id: str, status: str) -> None:
    for _ in range(300):
        if (await client.runs.get(thread_id, run_id))["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never became {status}")


# ---------------------------------------------------------------- assistants
@covers("assistants", "count")
async def _(client):
    assert await client.assistants.count(graph_id="chain") >= 1
    assert await client.assistants.count(metadata={"no": "such"}) == 0


@covers("assistants", "create")
async def _(client):
    created = await client.assistants.create("chain", name="made", metadata={"k": 1})
    assert created["graph_id"] == "chain" and created["name"] == "made" and created["version"] == 1


@covers("assistants", "delete")
async def _(client):
    created = await client.assistants.create("chain")
    await client.assistants.delete(created["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.get(created["assistant_id"])


@covers("assistants", "get")
async def _(client):
    assert (await client.assistants.get(CHAIN_ID))["graph_id"] == "chain"


@covers("assistants", "get_graph")
async def _(client):
    nodes = {n["id"] for n in (await client.assistants.get_graph(CHAIN_ID))["nodes"]}
    assert {"a", "b", "c"} <= nodes


@covers("assistants", "get_schemas")
async def _(client):
    schemas = await client.assistants.get_schemas(CHAIN_ID)
    assert schemas["graph_id"] == "chain"
    assert {"input_schema", "output_schema", "state_schema", "config_schema", "context_schema"} <= set(schemas)


@covers("assistants", "get_subgraphs")
async def _(client):
    assert await client.assistants.get_subgraphs(CHAIN_ID) == {}
    subgraphs = await client.assistants.get_subgraphs(NESTED_ID)
    assert list(subgraphs) == ["child"] and subgraphs["child"]["graph_id"] == "nested"
    assert list(await client.assistants.get_subgraphs(NESTED_ID, namespace="child", recurse=True)) == ["child"]
    with pytest.raises(NotFoundError):
        await client.assistants.get_subgraphs(str(uuid.uuid4()))


@covers("assistants", "get_versions")
async def _(client):
    created = await client.assistants.create("chain", name="v1")
    await client.assistants.update(created["assistant_id"], name="v2")
    versions = await client.assistants.get_versions(created["assistant_id"])
    assert [(v["version"], v["name"]) for v in versions] == [(2, "v2"), (1, "v1")]


@covers("assistants", "search")
async def _(client):
    assert [
        a["assistant_id"] for a in await client.assistants.search(graph_id="chain", metadata={"created_by": "system"})
    ] == [CHAIN_ID]


@covers("assistants", "set_latest")
async def _(client):
    created = await client.assistants.create("chain", name="first", config={"configurable": {"n": 1}})
    await client.assistants.update(created["assistant_id"], name="second", config={"configurable": {"n": 2}})
    back = await client.assistants.set_latest(created["assistant_id"], 1)
    assert back["version"] == 1 and back["name"] == "first"
    current = await client.assistants.get(created["assistant_id"])
    assert current["version"] == 1 and current["config"] == {"configurable": {"n": 1}}
    # A later update makes a new version after the highest one, not after the current.
    assert (await client.assistants.update(created["assistant_id"], name="third"))["version"] == 3
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(created["assistant_id"], 99)


@covers("assistants", "update")
async def _(client):
    created = await client.assistants.create("chain", name="old")
    updated = await client.assistants.update(created["assistant_id"], name="new")
    assert updated["version"] == 2 and updated["name"] == "new"


# ---------------------------------------------------------------- threads
@covers("threads", "copy")
async def _(client):
    thread_id = await _finished_thread(client)
    copy = await client.threads.copy(thread_id)
    assert copy["thread_id"] != thread_id
    assert (await client.threads.get_state(copy["thread_id"]))["values"] == DONE


@covers("threads", "count")
async def _(client):
    marker = str(uuid.uuid4())
    await client.threads.create(metadata={"marker": marker})
    assert await client.threads.count(metadata={"marker": marker}) == 1


@covers("threads", "create")
async def _(client):
    thread_id = str(uuid.uuid4())
    created = await client.threads.create(thread_id=thread_id, metadata={"m": 1})
    assert created["thread_id"] == thread_id and created["status"] == "idle"


@covers("threads", "delete")
async def _(client):
    thread_id = await _thread(client)
    await client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)


@covers("threads", "get")
async def _(client):
    thread_id = await _finished_thread(client)
    thread = await client.threads.get(thread_id)
    assert thread["values"] == DONE and thread["status"] == "idle"


@covers("threads", "get_history")
async def _(client):
    thread_id = await _finished_thread(client)
    history = await client.threads.get_history(thread_id)
    assert history[0]["values"] == DONE and history[-1]["next"] == ["__start__"]


@covers("threads", "get_state")
async def _(client):
    thread_id = await _finished_thread(client)
    state = await client.threads.get_state(thread_id)
    assert state["values"] == DONE and state["next"] == []


@covers("threads", "join_stream")
async def _(client):
    thread_id = await _thread(client)
    seen: list[tuple[str, object]] = []

    async def follow() -> None:
        async for part in await client.threads.join_stream(thread_id):
            seen.append((part.event, part.data))
            if part.event == "values" and part.data == DONE:
                return

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.3)  # the stream is open before the run exists
    run = await client.runs.create(thread_id, "chain", input={"items": []})
    await asyncio.wait_for(follower, TIMEOUT)
    assert seen[0] == ("metadata", {"run_id": run["run_id"], "attempt": 1})
    assert seen[-1] == ("values", DONE)


@covers("threads", "prune")
async def _(client):
    gone, kept = await _finished_thread(client), await _finished_thread(client)
    assert await client.threads.prune([gone]) == {"pruned_count": 1}
    with pytest.raises(NotFoundError):
        await client.threads.get(gone)
    assert len(await client.threads.get_history(kept)) > 1
    assert await client.threads.prune([kept, str(uuid.uuid4())], strategy="keep_latest") == {"pruned_count": 1}
    history = await client.threads.get_history(kept)
    assert len(history) == 1 and history[0]["values"] == DONE
    assert (await client.threads.get_state(kept))["values"] == DONE


@covers("threads", "search")
async def _(client):
    marker = str(uuid.uuid4())
    created = await client.threads.create(metadata={"marker": marker})
    assert [t["thread_id"] for t in await client.threads.search(metadata={"marker": marker})] == [created["thread_id"]]


@covers("threads", "stream")
async def _(client):
    # A minted thread: run.start creates it.
    async with client.threads.stream(assistant_id="chain") as thread:
        await thread.run.start(input={"items": []})
        assert await asyncio.wait_for(thread.output, TIMEOUT) == DONE
    assert (await client.threads.get_state(thread.thread_id))["values"] == DONE


@covers("threads", "update")
async def _(client):
    thread_id = (await client.threads.create(metadata={"a": 1}))["thread_id"]
    assert (await client.threads.update(thread_id, metadata={"b": 2}))["metadata"] == {"a": 1, "b": 2}


@covers("threads", "update_state")
async def _(client):
    thread_id = await _finished_thread(client)
    await client.threads.update_state(thread_id, {"items": ["x"]}, as_node="c")
    assert (await client.threads.get_state(thread_id))["values"] == {"items": ["a", "b", "c", "x"]}


# ---------------------------------------------------------------- runs
@covers("runs", "cancel")
async def _(client):
    thread_id = await _thread(client)
    run = await _long_run(client, thread_id)
    await _status_becomes(client, thread_id, run["run_id"], "running")
    await client.runs.cancel(thread_id, run["run_id"])
    await _status_becomes(client, thread_id, run["run_id"], "interrupted")


@covers("runs", "cancel_many")
async def _(client):
    thread_id = await _thread(client)
    running = await _long_run(client, thread_id)
    queued = await client.runs.create(thread_id, "chain", input={"items": []})
    await client.runs.cancel_many(thread_id=thread_id, run_ids=[running["run_id"], queued["run_id"]])
    for run in (running, queued):
        assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    # By status: a delayed run is pending until cancelled.
    later = await client.runs.create(await _thread(client), "chain", input={"items": []}, after_seconds=600)
    await client.runs.cancel_many(status="pending")
    assert (await client.runs.get(later["thread_id"], later["run_id"]))["status"] == "interrupted"
    with pytest.raises(NotFoundError):
        await client.runs.cancel_many(thread_id=thread_id, run_ids=[str(uuid.uuid4())])


@covers("runs", "create")
async def _(client):
    thread_id = await _thread(client)
    run = await client.runs.create(thread_id, "chain", input={"items": []})
    assert run["status"] == "pending" and run["thread_id"] == thread_id
    assert await client.runs.join(thread_id, run["run_id"]) == DONE


@covers("runs", "create_batch")
async def _(client):
    runs = await client.runs.create_batch(
        [{"assistant_id": "chain", "input": {"items": []}}, {"assistant_id": "chain", "input": {"items": ["z"]}}]
    )
    assert len(runs) == 2 and len({r["thread_id"] for r in runs}) == 2
    outputs = [await client.runs.join(r["thread_id"], r["run_id"]) for r in runs]
    assert outputs == [DONE, {"items": ["z", "a", "b", "c"]}]


@covers("runs", "delete")
async def _(client):
    thread_id = await _finished_thread(client)
    run_id = (await client.runs.list(thread_id))[0]["run_id"]
    await client.runs.delete(thread_id, run_id)
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run_id)


@covers("runs", "get")
async def _(client):
    thread_id = await _finished_thread(client)
    run = (await client.runs.list(thread_id))[0]
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"


@covers("runs", "join")
async def _(client):
    thread_id = await _thread(client)
    run = await client.runs.create(thread_id, "chain", input={"items": []})
    assert await client.runs.join(thread_id, run["run_id"]) == DONE


@covers("runs", "join_stream")
async def _(client):
    thread_id = await _thread(client)
    run = await client.runs.create(thread_id, "loop", input={"steps": 30}, stream_resumable=True)
    parts = [p async for p in client.runs.join_stream(thread_id, run["run_id"], last_event_id="0")]
    assert parts[-1].event == "values" and parts[-1].data == {"steps": 30, "count": 30}


@covers("runs", "list")
async def _(client):
    thread_id = await _finished_thread(client)
    runs = await client.runs.list(thread_id)
    assert [r["status"] for r in runs] == ["success"]


@covers("runs", "stream")
async def _(client):
    thread_id = await _thread(client)
    parts = [p async for p in client.runs.stream(thread_id, "chain", input={"items": []})]
    assert parts[0].event == "metadata" and parts[-1].data == DONE


@covers("runs", "wait")
async def _(client):
    assert await client.runs.wait(None, "chain", input={"items": []}) == DONE


# ---------------------------------------------------------------- the walk
def _sdk_methods() -> list[tuple[str, str]]:
    client = get_client(url="http://127.0.0.1:1")
    return [
        (resource, name)
        for resource in CALLS
        for name, _ in inspect.getmembers(type(getattr(client, resource)), inspect.isfunction)
        if not name.startswith("_")
    ]


@pytest.mark.asyncio(loop_scope="function")
async def test_every_sdk_method_is_covered():
    missing = sorted(f"{r}.{m}" for r, m in _sdk_methods() if m not in CALLS[r])
    stale = sorted(f"{r}.{m}" for r in CALLS for m in CALLS[r] if (r, m) not in _sdk_methods())
    assert not missing, f"SDK methods with no call in this test: {missing}"
    assert not stale, f"calls for methods the SDK no longer has: {stale}"


@pytest.mark.parametrize(("resource", "method"), [(r, m) for r in CALLS for m in CALLS[r]])
async def test_sdk_method(server, resource: str, method: str):
    await asyncio.wait_for(CALLS[resource][method](get_client(url=server.url)), TIMEOUT)


# ---------------------------------------------------------------- beyond one call each
async def test_thread_stream_human_in_the_loop(server):
    """client.threads.stream: an interrupt surfaces as thread.interrupts, run.respond resumes,
    and the values projection and output follow the run."""
    client = get_client(url=server.url)
    async with client.threads.stream(assistant_id="approval") as thread:
        await thread.run.start(input={"items": []})
        for _ in range(200):
            if thread.interrupted:
                break
            await asyncio.sleep(0.05)
        assert [i["value"] for i in thread.interrupts] == [{"question": "approve?", "items": ["draft"]}]
        await thread.run.respond("yes")
        assert await asyncio.wait_for(thread.output, TIMEOUT) == {"items": ["draft", "review:yes", "published"]}


async def test_thread_stream_values_and_errors(server):
    client = get_client(url=server.url)
    thread_id = await _thread(client)
    async with client.threads.stream(thread_id, assistant_id="chain") as thread:
        await thread.run.start(input={"items": []})
        snapshots = []
        async for snapshot in thread.values:
            snapshots.append(snapshot)
        assert snapshots[-1] == DONE
    async with client.threads.stream(assistant_id="failing") as thread:
        await thread.run.start(input={"items": []})
        with pytest.raises(RuntimeError, match="boom"):
            await asyncio.wait_for(thread.output, TIMEOUT)


async def test_new_routes_refuse_bad_input(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        thread_id = str(uuid.uuid4())
        cases = [
            ("POST", "/threads/prune", {}, 422),
            ("POST", "/threads/prune", {"thread_ids": ["nope"]}, 422),
            ("POST", "/threads/prune", {"thread_ids": [thread_id], "strategy": "shred"}, 422),
            ("POST", "/runs/batch", [], 422),
            ("POST", "/runs/batch", [{"assistant_id": "no-such-graph"}], 422),
            ("POST", "/runs/batch", [{"assistant_id": str(uuid.uuid4())}], 404),
            ("POST", "/runs/cancel", {}, 422),
            ("POST", "/runs/cancel", {"thread_id": thread_id}, 422),
            ("POST", "/runs/cancel", {"status": "done"}, 422),
            ("POST", "/runs/cancel?action=explode", {"status": "pending"}, 422),
            ("POST", f"/assistants/{CHAIN_ID}/latest", {}, 422),
            ("POST", f"/assistants/{CHAIN_ID}/latest", {"version": 0}, 422),
            ("POST", f"/assistants/{uuid.uuid4()}/latest", {"version": 1}, 404),
            ("GET", f"/threads/{thread_id}/stream", None, 404),
            ("GET", "/threads/nope/stream", None, 422),
            ("POST", f"/threads/{thread_id}/stream/events", {"channels": ["values"]}, 404),
            ("POST", f"/threads/{thread_id}/stream/events", {"channels": []}, 422),
            ("POST", f"/threads/{thread_id}/commands", {"method": "run.start"}, 422),
        ]
        for method, path, body, status in cases:
            response = await http.request(method, path, json=body)
            assert response.status_code == status, (method, path, body, response.text)
            assert "detail" in response.json()
        # Protocol failures come back in the protocol's envelope.
        reply = (
            await http.post(f"/threads/{thread_id}/commands", json={"id": 1, "method": "nope", "params": {}})
        ).json()
        assert reply == {"type": "error", "id": 1, "error": "unknown_command", "message": reply["message"]}
        reply = (
            await http.post(f"/threads/{thread_id}/commands", json={"id": 2, "method": "run.start", "params": {}})
        ).json()
        assert reply["error"] == "invalid_argument"


async def test_metrics(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        text = (await http.get("/metrics")).text
        assert "lg_api_num_pending_runs " in text and "lg_api_num_running_runs " in text
        queue = (await http.get("/metrics", params={"format": "json"})).json()["queue"]
        assert set(queue) == {"n_pending", "n_running"} and all(isinstance(v, int) for v in queue.values())
