"""Custom auth, as on the Agent Server: a project's `auth.py` (tests/user_projects/auth)
authenticates two users by bearer token, stamps each thread and assistant with its owner, and
filters reads: through langgraph-sdk, user B finds none of user A's threads, runs, streams or
history (404, as missing ones), counts none of them, and the graph of a run sees the user that
created it in each of its Step invocations (strict mode: one node per invocation).

Crons are there too (`@auth.on.crons`). The store's handler scopes every store route to the
user's own namespace (`test_store_routes_ask_the_store_handler`).
"""

from __future__ import annotations

import inspect
import uuid
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import get_data_parts, new_data_part
from a2a.types import CancelTaskRequest, GetTaskRequest, Message, Role, SendMessageRequest, TaskNotFoundError
from harness import ROOT, Server, mcp_session
from langgraph_sdk import get_client
from langgraph_sdk.errors import AuthenticationError, NotFoundError, PermissionDeniedError

pytestmark = pytest.mark.asyncio(loop_scope="function")

PROJECT = ROOT / "tests" / "user_projects" / "auth" / "langgraph.json"
TOKEN = {"a": "token-a", "b": "token-b", "reader": "token-reader"}


@pytest.fixture(scope="module")
def auth_server():
    server = Server("--step-mode", "strict", config=PROJECT).wait_ready()
    yield server
    server.stop()


def client(server: Server, user: str | None) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN[user]}"} if user else {}
    return get_client(url=server.url, headers=headers)


async def status_of(call: Any) -> int:
    """The status an SDK call fails with (some raise NotFoundError, joins httpx's error)."""
    try:
        await call
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code
    return 200


async def _drain(stream: Any) -> None:
    if inspect.isawaitable(stream):  # threads.join_stream is a coroutine giving the stream
        stream = await stream
    async for _ in stream:
        pass


def seen_by(values: dict[str, Any]) -> set[tuple[str, ...]]:
    return {
        (s["node"], s["identity"], s["user_id"], s["runtime_identity"], s["org"], *s["permissions"])
        for s in values["seen"]
    }


async def test_each_user_sees_only_their_own(auth_server):
    a, b = client(auth_server, "a"), client(auth_server, "b")
    b_threads = await b.threads.count()
    # A forged owner is overwritten by the stamp.
    thread = await a.threads.create(metadata={"owner": "user-b", "topic": "secret"})
    thread_id = thread["thread_id"]
    assert thread["metadata"] == {"owner": "user-a", "topic": "secret"}
    run = await a.runs.create(thread_id, "who", input={}, metadata={"owner": "user-b"})
    assert (await a.runs.join(thread_id, run["run_id"]))["seen"]
    assert (await a.runs.get(thread_id, run["run_id"]))["metadata"]["owner"] == "user-a"
    run_id = run["run_id"]

    hidden = {
        "thread": lambda: b.threads.get(thread_id),
        "state": lambda: b.threads.get_state(thread_id),
        "history": lambda: b.threads.get_history(thread_id),
        "runs": lambda: b.runs.list(thread_id),
        "run": lambda: b.runs.get(thread_id, run_id),
        "join": lambda: b.runs.join(thread_id, run_id),
        "update": lambda: b.threads.update(thread_id, metadata={"owner": "user-b"}),
        "delete": lambda: b.threads.delete(thread_id),
        "copy": lambda: b.threads.copy(thread_id),
        "cancel": lambda: b.runs.cancel(thread_id, run_id),
        "delete run": lambda: b.runs.delete(thread_id, run_id),
        "update state": lambda: b.threads.update_state(thread_id, {"seen": []}),
        "run on it": lambda: b.runs.wait(thread_id, "who", input={}),
    }
    for what, call in hidden.items():
        assert await status_of(call()) == 404, f"user B reached user A's {what}"
    for what, stream in {
        "run stream": lambda: b.runs.join_stream(thread_id, run_id),
        "new run's stream": lambda: b.runs.stream(thread_id, "who", input={}),
        "thread stream": lambda: b.threads.join_stream(thread_id),
    }.items():
        assert await status_of(_drain(stream())) == 404, f"user B read user A's {what}"

    assert thread_id not in {t["thread_id"] for t in await b.threads.search(limit=1000)}
    assert await b.threads.search(metadata={"topic": "secret"}) == []
    assert await b.threads.count() == b_threads
    assert await a.threads.count(metadata={"topic": "secret"}) == 1
    # The thread-centric protocol answers as for a thread with no run.
    async with httpx.AsyncClient(base_url=auth_server.url, headers={"Authorization": "Bearer token-b"}) as http:
        command = await http.post(f"/threads/{thread_id}/commands", json={"id": 1, "method": "state.get"})
        assert command.json()["error"] == "no_such_run"
        events = await http.post(f"/threads/{thread_id}/stream/events", json={"channels": ["values"]})
        assert events.status_code == 404
    # Nothing B tried changed A's thread.
    metadata = (await a.threads.get(thread_id))["metadata"]
    assert (metadata["owner"], metadata["topic"]) == ("user-a", "secret")
    assert [r["run_id"] for r in await a.runs.list(thread_id)] == [run_id]

    # Crons: stamped with their owner by `@auth.on.crons.create`, filtered by `@auth.on.crons`.
    b_crons = await b.crons.count()
    on_thread = await a.crons.create_for_thread(thread_id, "who", schedule="0 9 1 1 *", metadata={"owner": "user-b"})
    stateless = await a.crons.create("who", schedule="0 9 1 1 *", metadata={"topic": "secret"})
    assert on_thread["metadata"] == {"owner": "user-a"} and on_thread["user_id"] == "user-a"
    mine = {on_thread["cron_id"], stateless["cron_id"]}
    for cron_id in mine:
        assert await status_of(b.crons.update(cron_id, enabled=False)) == 404, "user B changed user A's cron"
        assert await status_of(b.crons.delete(cron_id)) == 404, "user B deleted user A's cron"
    assert mine.isdisjoint(c["cron_id"] for c in await b.crons.search(limit=1000))
    assert await b.crons.search(thread_id=thread_id) == [] and await b.crons.count(thread_id=thread_id) == 0
    assert await b.crons.count() == b_crons
    # ... nor put a cron on A's thread: each fire would be a run there.
    assert await status_of(b.crons.create_for_thread(thread_id, "who", schedule="0 9 1 1 *")) == 404
    assert {c["cron_id"] for c in await a.crons.search(limit=1000)} >= mine
    assert await a.crons.count(metadata={"topic": "secret"}) == 1
    assert (await a.crons.update(stateless["cron_id"], enabled=False))["enabled"] is False
    for cron_id in mine:
        await a.crons.delete(cron_id)


async def test_the_graph_runs_as_the_user_who_created_the_run(auth_server):
    a, b = client(auth_server, "a"), client(auth_server, "b")
    thread = await a.threads.create()
    # What a client puts under the server's keys never reaches the graph.
    forged = {"configurable": {"langgraph_auth_user_id": "user-b", "langgraph_auth_permissions": ["admin"]}}
    values = await a.runs.wait(thread["thread_id"], "who", input={}, config=forged)
    assert seen_by(values) == {
        ("first", "user-a", "user-a", "user-a", "acme", "threads:write"),
        ("second", "user-a", "user-a", "user-a", "acme", "threads:write"),
    }
    # A graph factory is given the run's user too (ServerRuntime.user).
    assert (await b.runs.wait(None, "made_for", input={}))["made_for"] == "user-b"
    # A stateless run, and a run creating its thread: B's, stamped by the run's handler.
    assert {s[1] for s in seen_by(await b.runs.wait(None, "who", input={}))} == {"user-b"}
    new_id = str(uuid.uuid4())
    values = await b.runs.wait(new_id, "who", input={}, if_not_exists="create")
    assert {s[1] for s in seen_by(values)} == {"user-b"}
    assert (await b.threads.get(new_id))["metadata"]["owner"] == "user-b"
    with pytest.raises(NotFoundError):
        await a.threads.get(new_id)


async def test_who_is_not_authenticated_gets_401_and_who_may_not_403(auth_server):
    anonymous, wrong = client(auth_server, None), get_client(url=auth_server.url, headers={"Authorization": "Bearer x"})
    for user in (anonymous, wrong):
        with pytest.raises(AuthenticationError):
            await user.threads.search()
    async with httpx.AsyncClient(base_url=auth_server.url) as http:
        refused = await http.post("/threads", json={})
        assert (refused.status_code, refused.json()) == (401, {"detail": "Invalid or missing token"})
        for path in ("/info", "/openapi.json", "/docs", "/metrics", "/assistants/search"):
            assert (await http.request("POST" if "search" in path else "GET", path)).status_code == 401, path
        assert (await http.get("/ok")).status_code == 200
    # Authenticated, but threads.create returns False for a user without threads:write.
    with pytest.raises(PermissionDeniedError) as refused_create:
        await client(auth_server, "reader").threads.create()
    assert refused_create.value.response.json() == {"detail": "Forbidden"}


async def test_mcp_needs_a_token_and_its_tools_run_as_the_caller(auth_server):
    async with httpx.AsyncClient(base_url=auth_server.url) as http:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        refused = await http.post("/mcp", json=ping, headers={"Accept": "application/json"})
        assert (refused.status_code, refused.json()) == (401, {"detail": "Invalid or missing token"})
    async with mcp_session(auth_server.url, {"Authorization": f"Bearer {TOKEN['a']}"}) as session:
        result = await session.call_tool("who", {})
    assert not result.is_error and result.structured_content is not None
    assert {s[1] for s in seen_by(result.structured_content)} == {"user-a"}


async def test_assistants_are_read_by_all_and_changed_by_their_editors(auth_server):
    a, b = client(auth_server, "a"), client(auth_server, "b")
    assistant = await a.assistants.create("who", name="a's", metadata={"team": "x"})
    assistant_id = assistant["assistant_id"]
    assert assistant["metadata"] == {"team": "x", "editors": ["user-a"]}
    assert (await b.assistants.get(assistant_id))["name"] == "a's"
    assert assistant_id in {x["assistant_id"] for x in await b.assistants.search(graph_id="who")}
    # B runs it on B's own thread, as itself.
    values = await b.runs.wait(None, assistant_id, input={})
    assert {s[1] for s in seen_by(values)} == {"user-b"}
    with pytest.raises(NotFoundError):
        await b.assistants.update(assistant_id, name="b's")
    with pytest.raises(NotFoundError):
        await b.assistants.delete(assistant_id)
    assert (await a.assistants.update(assistant_id, name="renamed"))["name"] == "renamed"


async def test_a2a_asks_the_same_auth(auth_server):
    """A2A is no way around auth: 401 without a token (cards and JSON-RPC); a task's thread is
    its user's, the graph runs as that user, and another user finds no such task."""
    async with httpx.AsyncClient(base_url=auth_server.url) as http:
        for path in ("/a2a/who/.well-known/agent-card.json", "/.well-known/agent-card.json?assistant_id=who"):
            assert (await http.get(path)).status_code == 401, path
        msg = {"role": "user", "messageId": "m1", "parts": [{"kind": "data", "data": {}}]}
        refused = await http.post(
            "/a2a/who", json={"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": msg}}
        )
        assert (refused.status_code, refused.json()) == (401, {"detail": "Invalid or missing token"})

    async def agent_of(http: httpx.AsyncClient) -> Any:
        card = await A2ACardResolver(http, f"{auth_server.url}/a2a/who").get_agent_card()
        return ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)

    headers = {u: {"Authorization": f"Bearer {TOKEN[u]}"} for u in ("a", "b")}
    async with (
        httpx.AsyncClient(headers=headers["a"], timeout=30) as http_a,
        httpx.AsyncClient(headers=headers["b"], timeout=30) as http_b,
    ):
        a, b = await agent_of(http_a), await agent_of(http_b)
        request = SendMessageRequest(message=Message(message_id="m2", role=Role.ROLE_USER, parts=[new_data_part({})]))
        [reply] = [r async for r in a.send_message(request)]
        task = reply.task
        [values] = get_data_parts(task.artifacts[0].parts)
        assert {s["identity"] for s in values["seen"]} == {"user-a"}
        for call in (b.get_task(GetTaskRequest(id=task.id)), b.cancel_task(CancelTaskRequest(id=task.id))):
            with pytest.raises(TaskNotFoundError):
                await call
    assert (await client(auth_server, "a").threads.get(task.context_id))["metadata"]["owner"] == "user-a"


async def test_store_routes_ask_the_store_handler(auth_server):
    """`@auth.on.store` applies to every store route: put, get, search, list_namespaces and delete
    all see the namespace it rewrote (prefixed with the user's id), so A and B each write
    ("prefs",) and read only their own; a user the handler refuses gets 403 on each route."""
    a, b = client(auth_server, "a"), client(auth_server, "b")
    await a.store.put_item(["prefs"], "theme", {"color": "red", "owner": "a"})
    await b.store.put_item(["prefs"], "theme", {"color": "blue", "owner": "b"})
    assert (await a.store.get_item(["prefs"], "theme"))["value"]["color"] == "red"
    got = await b.store.get_item(["prefs"], "theme")
    assert (got["namespace"], got["value"]["color"]) == (["user-b", "prefs"], "blue")
    assert [i["value"]["owner"] for i in (await b.store.search_items(["prefs"]))["items"]] == ["b"]
    assert [i["value"]["owner"] for i in (await b.store.search_items([]))["items"]] == ["b"]
    assert (await a.store.list_namespaces())["namespaces"] == [["user-a", "prefs"]]
    await b.store.delete_item(["prefs"], "theme")
    assert await b.store.get_item(["prefs"], "theme") is None
    assert (await a.store.get_item(["prefs"], "theme"))["value"]["color"] == "red"  # B deleted its own
    reader = client(auth_server, "reader")
    for what, call in {
        "put": lambda: reader.store.put_item(["prefs"], "theme", {"x": 1}),
        "get": lambda: reader.store.get_item(["prefs"], "theme"),
        "search": lambda: reader.store.search_items(["prefs"]),
        "list_namespaces": lambda: reader.store.list_namespaces(),
        "delete": lambda: reader.store.delete_item(["prefs"], "theme"),
    }.items():
        with pytest.raises(PermissionDeniedError) as refused:
            await call()
        assert refused.value.response.json() == {"detail": "This user may not use the store"}, what
