"""Assistants, threads and the peer's error shapes, through langgraph-sdk and plain HTTP."""

from __future__ import annotations

import uuid

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError

pytestmark = pytest.mark.asyncio(loop_scope="function")

CHAIN_ID = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "chain"))


async def test_system_assistants_have_peer_ids(server):
    client = get_client(url=server.url)
    found = await client.assistants.search(graph_id="chain")
    assert [a["assistant_id"] for a in found] == [CHAIN_ID]
    assert found[0]["metadata"] == {"created_by": "system"}
    assert found[0]["name"] == "chain"
    all_graphs = {a["graph_id"] for a in await client.assistants.search(limit=100)}
    assert {"chain", "loop", "approval", "failing"} <= all_graphs


async def test_assistant_lifecycle(server):
    client = get_client(url=server.url)
    created = await client.assistants.create(
        "chain", config={"configurable": {"k": 1}}, name="mine", metadata={"team": "x"}
    )
    assert created["graph_id"] == "chain" and created["version"] == 1
    assert (await client.assistants.get(created["assistant_id"]))["name"] == "mine"
    patched = await client.assistants.update(created["assistant_id"], name="renamed", metadata={"more": True})
    assert patched["version"] == 2 and patched["name"] == "renamed"
    assert patched["metadata"] == {"team": "x", "more": True}
    assert [a["assistant_id"] for a in await client.assistants.search(metadata={"team": "x"})] == [
        created["assistant_id"]
    ]
    # A run through a user assistant works like one through the graph id.
    thread = await client.threads.create()
    assert await client.runs.wait(thread["thread_id"], created["assistant_id"], input={"items": []}) == {
        "items": ["a", "b", "c"]
    }
    with pytest.raises(ConflictError):
        await client.assistants.create("chain", assistant_id=created["assistant_id"])
    same = await client.assistants.create("chain", assistant_id=created["assistant_id"], if_exists="do_nothing")
    assert same["name"] == "renamed"
    await client.assistants.delete(created["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.get(created["assistant_id"])


async def test_thread_lifecycle(server):
    client = get_client(url=server.url)
    thread_id = str(uuid.uuid4())
    thread = await client.threads.create(thread_id=thread_id, metadata={"owner": "me"})
    assert thread["thread_id"] == thread_id and thread["status"] == "idle" and thread["values"] is None
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id)
    assert (await client.threads.create(thread_id=thread_id, if_exists="do_nothing"))["thread_id"] == thread_id
    found = await client.threads.search(metadata={"owner": "me"})
    assert [t["thread_id"] for t in found] == [thread_id]
    updated = await client.threads.update(thread_id, metadata={"more": 1})
    assert updated["metadata"] == {"owner": "me", "more": 1}
    await client.runs.wait(thread_id, "chain", input={"items": []})
    assert [t["thread_id"] for t in await client.threads.search(metadata={"owner": "me"}, status="idle")] == [thread_id]
    await client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)


async def test_errors_have_the_peer_shape(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        missing = await http.get(f"/threads/{uuid.uuid4()}")
        assert missing.status_code == 404 and isinstance(missing.json()["detail"], str)
        bad_id = await http.get("/threads/not-a-uuid")
        assert bad_id.status_code == 422
        assert bad_id.json() == {"detail": "Invalid thread ID: must be a UUID"}
        bad_json = await http.post("/threads", content=b"{nope", headers={"content-type": "application/json"})
        assert bad_json.status_code == 422 and bad_json.json() == {"detail": "Invalid JSON in request body"}
        thread = (await http.post("/threads", json={})).json()
        no_assistant = await http.post(f"/threads/{thread['thread_id']}/runs", json={"input": {}})
        assert no_assistant.status_code == 422 and isinstance(no_assistant.json()["detail"], str)
        bad_graph = await http.post(f"/threads/{thread['thread_id']}/runs", json={"assistant_id": "nope"})
        assert bad_graph.status_code == 422 and "chain" in bad_graph.json()["detail"]
        unknown = await http.post(f"/threads/{thread['thread_id']}/runs", json={"assistant_id": str(uuid.uuid4())})
        assert unknown.status_code == 404 and unknown.json() == {"detail": "Thread or assistant not found."}
        no_thread = await http.post(f"/threads/{uuid.uuid4()}/runs", json={"assistant_id": "chain"})
        assert no_thread.status_code == 404
        bad_mode = await http.post(
            f"/threads/{thread['thread_id']}/runs", json={"assistant_id": "chain", "stream_mode": "lifecycle"}
        )
        assert bad_mode.status_code == 422
        # Nothing half-written: the thread has no runs after all those refusals.
        assert (await http.get(f"/threads/{thread['thread_id']}/runs")).json() == []


async def test_meta_endpoints(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/ok")).json() == {"ok": True}
        info = (await http.get("/info")).json()
        assert info["flags"]["assistants"] is True and info["langgraph_py_version"]
        spec = (await http.get("/openapi.json")).json()
        assert "/threads/{thread_id}/runs/stream" in spec["paths"]
        assert (await http.get("/docs")).status_code == 200


async def test_if_not_exists_create(server):
    client = get_client(url=server.url)
    thread_id = str(uuid.uuid4())
    result = await client.runs.wait(thread_id, "chain", input={"items": []}, if_not_exists="create")
    assert result == {"items": ["a", "b", "c"]}
    assert (await client.threads.get(thread_id))["status"] == "idle"
