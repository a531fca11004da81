"""Every assistant is an A2A agent, driven by `a2a-sdk`'s client as an A2A user drives it: the agent
card, `SendMessage` answering with the graph's last AI message, `SendStreamingMessage` going
submitted → working → artifact → completed, an interrupt as `input-required` answered by a second
message with the task's id (the same task, resumed), cancel, and the A2A error codes; the 0.3
method names (`message/send`, `message/stream`, `tasks/get`, `tasks/cancel`) through the SDK's
0.3 client. Protocol translation is the HTTP layer's: one flavour of the example graphs is enough.
(Auth: tests/conformance/test_sdk_auth.py; the built Lambda artifacts: tests/functional/test_build.py.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import get_data_parts, new_data_part
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskState,
)
from a2a.utils.errors import InvalidParamsError
from langgraph_sdk import get_client

pytestmark = [
    pytest.mark.asyncio(loop_scope="function"),
    pytest.mark.parametrize("flavor", ["async"], scope="session"),
]

S = TaskState


@asynccontextmanager
async def agent(url: str, graph: str, *, version: str | None = None, **config: Any) -> AsyncIterator[Client]:
    """A client of the graph's agent, made from its card (limited to one protocol version)."""
    async with httpx.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, f"{url}/a2a/{graph}").get_agent_card()
        if version is not None:
            kept = [i for i in card.supported_interfaces if i.protocol_version == version]
            del card.supported_interfaces[:]
            card.supported_interfaces.extend(kept)
        yield ClientFactory(ClientConfig(httpx_client=http, **config)).create(card)


def message(*parts: Part, task_id: str = "", context_id: str = "") -> SendMessageRequest:
    msg = Message(
        message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=parts, task_id=task_id, context_id=context_id
    )
    return SendMessageRequest(message=msg)


def data(value: dict[str, Any]) -> Part:
    return new_data_part(value)


async def send(client: Client, request: SendMessageRequest) -> Task:
    [response] = [r async for r in client.send_message(request)]
    return response.task


def state_of(event: StreamResponse) -> str:
    if event.HasField("task"):
        return S.Name(event.task.status.state)
    if event.HasField("status_update"):
        return S.Name(event.status_update.status.state)
    return "artifact" if event.HasField("artifact_update") else "message"


async def test_agent_card_per_assistant(server):
    async with httpx.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, f"{server.url}/a2a/chat").get_agent_card()
        assistant_id = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "chat"))
        assert card.name == "chat" and card.capabilities.streaming
        [skill] = card.skills
        assert skill.id == f"{assistant_id}-main"
        assert {(i.url, i.protocol_binding, i.protocol_version) for i in card.supported_interfaces} == {
            (f"{server.url}/a2a/{assistant_id}", "JSONRPC", "1.0"),
            (f"{server.url}/a2a/{assistant_id}", "JSONRPC", "0.3"),
        }
        # The same card by UUID and at the deployment's well-known path; a missing one is a 404.
        by_id = await A2ACardResolver(http, f"{server.url}/a2a/{assistant_id}").get_agent_card()
        well_known = (await http.get(f"{server.url}/.well-known/agent-card.json?assistant_id={assistant_id}")).json()
        assert by_id == card and well_known["name"] == "chat" and well_known["url"] == card.supported_interfaces[0].url
        missing = await http.get(f"{server.url}/a2a/{uuid.uuid4()}/.well-known/agent-card.json")
        assert missing.status_code == 404


async def test_send_message_answers_with_the_last_ai_message(server):
    async with agent(server.url, "chat", streaming=False) as client:
        task = await send(client, message(Part(text="hello")))
    assert task.status.state == S.TASK_STATE_COMPLETED
    [artifact] = task.artifacts
    assert artifact.name == "Assistant Response" and [p.text for p in artifact.parts] == ["Anything else?"]
    # The context is the thread: the graph got the text as a human message and answered it.
    state = await get_client(url=server.url).threads.get_state(task.context_id)
    assert [m["content"] for m in state["values"]["messages"]] == ["hello", "You said: hello", "Anything else?"]


async def test_stream_goes_submitted_working_artifact_completed(server):
    async with agent(server.url, "chat") as client:
        events = [e async for e in client.send_message(message(Part(text="hi")))]
    states = [state_of(e) for e in events]
    assert states == ["TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "artifact", "TASK_STATE_COMPLETED"], states
    task_id = events[0].task.id
    assert all((e.task.id or e.status_update.task_id or e.artifact_update.task_id) == task_id for e in events)
    assert [p.text for p in events[2].artifact_update.artifact.parts] == ["Anything else?"]


async def test_interrupt_is_input_required_and_a_second_message_resumes_the_task(server):
    async with agent(server.url, "approval", streaming=False) as client:
        asked = await send(client, message(data({"items": []})))
        assert asked.status.state == S.TASK_STATE_INPUT_REQUIRED
        [question] = get_data_parts(asked.status.message.parts)
        assert question["value"] == {"question": "approve?", "items": ["draft"]} and question["id"]
        assert [a.name for a in asked.artifacts] == ["Interrupt"]

        answered = await send(client, message(Part(text="yes"), task_id=asked.id, context_id=asked.context_id))
        assert (answered.id, answered.status.state) == (asked.id, S.TASK_STATE_COMPLETED)
        [result] = get_data_parts(answered.artifacts[0].parts)
        assert result == {"items": ["draft", "review:yes", "published"]}
        got = await client.get_task(GetTaskRequest(id=asked.id))
        assert got.status.state == S.TASK_STATE_COMPLETED
        # A finished task takes no more input; a graph without `messages` takes no text.
        with pytest.raises(InvalidParamsError):
            await send(client, message(Part(text="again"), task_id=asked.id))
        with pytest.raises(InvalidParamsError):
            await send(client, message(Part(text="hello")))
    # The resume continued the same thread: one checkpointed history, both runs on it.
    runs = await get_client(url=server.url).runs.list(asked.context_id)
    assert [r["status"] for r in runs] == ["success", "success"]


async def test_two_answers_at_once_resume_the_task_once(server):
    async with agent(server.url, "approval", streaming=False) as client:
        asked = await send(client, message(data({"items": []})))
        answers = [message(Part(text=text), task_id=asked.id) for text in ("one", "two")]
        outcomes = await asyncio.gather(*(send(client, a) for a in answers), return_exceptions=True)
    [done] = [o for o in outcomes if isinstance(o, Task)]
    assert [type(o) for o in outcomes if not isinstance(o, Task)] == [InvalidParamsError], outcomes
    [result] = get_data_parts(done.artifacts[0].parts)
    assert len([i for i in result["items"] if i.startswith("review:")]) == 1, result


async def test_cancel_ends_the_run_and_its_subscribers_and_errors_have_a2a_codes(server):
    async with agent(server.url, "loop", streaming=False, polling=True) as client, agent(server.url, "loop") as streams:
        started = await send(client, message(data({"steps": 1_000_000})))
        assert started.status.state == S.TASK_STATE_SUBMITTED
        watched: list[StreamResponse] = []
        seen = asyncio.Event()

        async def watch() -> None:
            async for event in streams.subscribe(SubscribeToTaskRequest(id=started.id)):
                watched.append(event)
                seen.set()

        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(seen.wait(), 10)
        cancelled = await client.cancel_task(CancelTaskRequest(id=started.id))
        assert cancelled.status.state == S.TASK_STATE_CANCELED
        await asyncio.wait_for(watcher, 10)  # the subscription ends with the run
        assert state_of(watched[0]) in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
        assert state_of(watched[-1]) == "TASK_STATE_CANCELED"
        assert (await client.get_task(GetTaskRequest(id=started.id))).status.state == S.TASK_STATE_CANCELED
        with pytest.raises(TaskNotCancelableError):  # -32002
            await client.cancel_task(CancelTaskRequest(id=started.id))
        with pytest.raises(TaskNotFoundError):  # -32001
            await client.get_task(GetTaskRequest(id=f"{started.context_id}:{uuid.uuid4()}"))
        listed = await client.list_tasks(ListTasksRequest(context_id=started.context_id))
        assert [t.id for t in listed.tasks] == [started.id]
    runs = await get_client(url=server.url).runs.list(started.context_id)
    assert [r["status"] for r in runs] == ["interrupted"]


async def test_each_task_of_a_context_keeps_its_own_result(server):
    """Tasks of one context are runs of one thread: an earlier task still answers with what its
    own run left, not the thread's latest state."""
    async with agent(server.url, "chain", streaming=False) as client:
        first = await send(client, message(data({"items": ["x"]})))
        second = await send(client, message(data({"items": ["y"]}), context_id=first.context_id))
        assert second.context_id == first.context_id and second.id != first.id
        assert get_data_parts(second.artifacts[0].parts) == [{"items": ["x", "a", "b", "c", "y", "a", "b", "c"]}]
        again = await client.get_task(GetTaskRequest(id=first.id))
        assert get_data_parts(again.artifacts[0].parts) == [{"items": ["x", "a", "b", "c"]}]
        # Listed newest first: the context's, or page by page the agent's own.
        listed = await client.list_tasks(ListTasksRequest(context_id=first.context_id, status=S.TASK_STATE_COMPLETED))
        assert [t.id for t in listed.tasks] == [second.id, first.id]
        page = await client.list_tasks(ListTasksRequest(page_size=1))
        assert ([t.id for t in page.tasks], page.next_page_token) == ([second.id], "1")


async def test_errors_are_failed_tasks(server):
    async with agent(server.url, "failing", streaming=False) as client:
        task = await send(client, message(data({})))
    assert task.status.state == S.TASK_STATE_FAILED
    assert "boom" in task.status.message.parts[0].text


async def test_protocol_0_3_names_through_the_sdk_0_3_client(server):
    async with agent(server.url, "approval", version="0.3") as client:
        events = [e async for e in client.send_message(message(data({"items": []})))]
        assert state_of(events[-1]) == "TASK_STATE_INPUT_REQUIRED"
        task_id = events[-1].status_update.task_id
        got = await client.get_task(GetTaskRequest(id=task_id))  # tasks/get
        assert got.status.state == S.TASK_STATE_INPUT_REQUIRED
        with pytest.raises(TaskNotCancelableError):  # tasks/cancel
            await client.cancel_task(CancelTaskRequest(id=task_id))
    async with agent(server.url, "approval", version="0.3", streaming=False) as client:
        done = await send(client, message(data({"ok": True}), task_id=task_id))  # message/send
        assert done.status.state == S.TASK_STATE_COMPLETED
    # On the wire: 0.3's shapes (the Task itself as result, lowercase states), and a 1.0 name
    # sent without an A2A-Version header is served as 1.0.
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task_id}}
        result = (await http.post("/a2a/approval", json=body)).json()["result"]
        assert (result["kind"], result["status"]["state"]) == ("task", "completed")
        body = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}
        assert (await http.post("/a2a/approval", json=body)).json()["result"]["status"][
            "state"
        ] == "TASK_STATE_COMPLETED"
        body = {"jsonrpc": "2.0", "id": 3, "method": "tasks/nope", "params": {}}
        assert (await http.post("/a2a/approval", json=body)).json()["error"]["code"] == -32601
