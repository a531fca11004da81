"""Human in the loop through langgraph-sdk: interrupt(), resume with a Command, several interrupts,
interrupt_before/after, new input on an interrupted thread, and the deadline for human input.
(That a resume continues the *same* Step Functions execution is shown in
tests/functional/test_resume.py, where moto's execution history is visible.)"""

from __future__ import annotations

import asyncio
import time

import pytest
from langgraph_sdk import get_client

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest.fixture
def server(request, step_mode, server):
    """Both step modes: many supersteps per Step invocation, or one (each resumed from its checkpoint)."""
    return server if step_mode == "batched" else request.getfixturevalue("strict_server")


async def _interrupted(client, graph: str = "approval", **kwargs) -> tuple[str, dict]:
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], graph, input={"items": []}, **kwargs)
    return thread["thread_id"], result


async def test_interrupt_shows_in_status_state_and_streams(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    parts = [
        (p.event, p.data)
        async for p in client.runs.stream(
            thread["thread_id"], "approval", input={"items": []}, stream_mode=["values", "updates"]
        )
    ]
    question = {"question": "approve?", "items": ["draft"]}
    # The peer's shapes: an `updates` chunk of {"__interrupt__": [...]}, then the values with it.
    event, update = parts[-2]
    assert event == "updates" and list(update) == ["__interrupt__"]
    [interrupt] = update["__interrupt__"]
    assert interrupt["value"] == question and interrupt["id"] and "response_schema" in interrupt
    assert parts[-1] == ("values", {"items": ["draft"], "__interrupt__": [interrupt]})

    [run] = await client.runs.list(thread["thread_id"])
    assert run["status"] == "success"  # the peer's status for a run stopped by interrupt()
    got = await client.threads.get(thread["thread_id"])
    assert got["status"] == "interrupted"
    [(task_id, [thread_interrupt])] = got["interrupts"].items()
    assert thread_interrupt == interrupt
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["review"]
    assert state["interrupts"] == [interrupt]
    assert state["tasks"][0]["id"] == task_id and state["tasks"][0]["interrupts"] == [interrupt]


async def test_resume_with_command_through_wait_stream_and_create(server):
    client = get_client(url=server.url)
    thread_id, result = await _interrupted(client)
    assert result["__interrupt__"][0]["value"]["question"] == "approve?"
    parts = [
        (p.event, p.data)
        async for p in client.runs.stream(thread_id, "approval", command={"resume": "yes"}, stream_mode="updates")
    ]
    assert parts[1:] == [
        ("updates", {"review": {"items": ["review:yes"]}}),
        ("updates", {"publish": {"items": ["published"]}}),
    ]
    assert (await client.threads.get(thread_id))["status"] == "idle"

    thread_id, _ = await _interrupted(client)
    assert await client.runs.wait(thread_id, "approval", command={"resume": "ok"}) == {
        "items": ["draft", "review:ok", "published"]
    }
    thread_id, _ = await _interrupted(client)
    run = await client.runs.create(thread_id, "approval", command={"resume": "bg"})
    assert (await client.runs.join(thread_id, run["run_id"]))["items"][-2:] == ["review:bg", "published"]
    runs = await client.runs.list(thread_id)
    assert [r["status"] for r in runs] == ["success", "success"]
    assert runs[0]["kwargs"]["command"] == {"resume": "bg"}


async def test_several_interrupts_resumed_by_id(server):
    client = get_client(url=server.url)
    thread_id, result = await _interrupted(client, "pair")
    ids = {i["value"]["question"]: i["id"] for i in result["__interrupt__"]}
    assert set(ids) == {"left?", "right?"}
    state = await client.threads.get_state(thread_id)
    assert sorted(i["id"] for i in state["interrupts"]) == sorted(ids.values())
    done = await client.runs.wait(thread_id, "pair", command={"resume": {ids["left?"]: "L", ids["right?"]: "R"}})
    assert sorted(done["items"]) == ["left:L", "right:R"]
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_command_with_update_and_goto(server):
    client = get_client(url=server.url)
    thread_id, _ = await _interrupted(client)
    result = await client.runs.wait(thread_id, "approval", command={"update": {"items": ["edited"]}, "goto": "publish"})
    # As LangGraph runs it: the update lands, then `publish` and the pending `review` share a
    # superstep; review asks again, so publish's write waits with it in the checkpoint.
    assert result["items"] == ["draft", "edited"]
    assert result["__interrupt__"][0]["value"]["items"] == ["draft", "edited"]
    assert sorted((await client.threads.get_state(thread_id))["next"]) == ["review"]
    done = await client.runs.wait(thread_id, "approval", command={"resume": "ok"})
    assert sorted(done["items"]) == sorted(["draft", "edited", "published", "review:ok", "published"])
    # update given as [key, value] pairs, goto as a list, on a finished thread
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "chain", input={"items": []})
    again = await client.runs.wait(thread["thread_id"], "chain", command={"update": [["items", ["u"]]], "goto": ["c"]})
    assert again == {"items": ["a", "b", "c", "u", "c"]}


async def test_interrupt_before_and_after_per_run(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    stopped = await client.runs.wait(thread_id, "chain", input={"items": ["x"]}, interrupt_before=["b"])
    assert stopped == {"items": ["x", "a"]}
    got = await client.threads.get(thread_id)
    assert got["status"] == "interrupted" and (await client.threads.get_state(thread_id))["next"] == ["b"]
    after = await client.runs.wait(thread_id, "chain", input=None, interrupt_after=["b"])
    assert after == {"items": ["x", "a", "b"]}
    assert (await client.threads.get_state(thread_id))["next"] == ["c"]
    assert await client.runs.wait(thread_id, "chain", input=None) == {"items": ["x", "a", "b", "c"]}
    assert (await client.threads.get(thread_id))["status"] == "idle"
    everything = await client.runs.wait(
        (await client.threads.create())["thread_id"], "chain", input={"items": []}, interrupt_before="*"
    )
    assert everything == {"items": []}


async def test_interrupt_before_and_after_in_assistant_config(server):
    client = get_client(url=server.url)
    assistant = await client.assistants.create("chain", config={"interrupt_after": ["a"]}, name="stop-after-a")
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    assert await client.runs.wait(thread_id, assistant["assistant_id"], input={"items": []}) == {"items": ["a"]}
    assert (await client.threads.get_state(thread_id))["next"] == ["b"]
    # The run's own value wins over the assistant's.
    assert await client.runs.wait(thread_id, assistant["assistant_id"], input=None, interrupt_after=["b"]) == {
        "items": ["a", "b"]
    }
    assert await client.runs.wait(thread_id, assistant["assistant_id"], input=None) == {"items": ["a", "b", "c"]}
    before = await client.assistants.create("chain", config={"interrupt_before": ["c"]}, name="stop-before-c")
    thread = await client.threads.create()
    assert await client.runs.wait(thread["thread_id"], before["assistant_id"], input={"items": []}) == {
        "items": ["a", "b"]
    }
    await client.assistants.delete(assistant["assistant_id"])
    await client.assistants.delete(before["assistant_id"])


async def test_new_input_on_an_interrupted_thread_starts_over(server):
    client = get_client(url=server.url)
    thread_id, _ = await _interrupted(client)
    result = await client.runs.wait(thread_id, "approval", input={"items": ["new"]})
    # The pending review is dropped; the new input runs from the start and stops at review again.
    assert result["items"] == ["draft", "new", "draft"]
    assert len(result["__interrupt__"]) == 1
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    assert await client.runs.wait(thread_id, "approval", command={"resume": "fine"}) == {
        "items": ["draft", "new", "draft", "review:fine", "published"]
    }


async def _until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await predicate():
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def test_deadline_for_human_input_resumes_with_a_value(server):
    """stepgraph's extension: the assistant config gives a deadline and the value to resume with."""
    client = get_client(url=server.url)
    assistant = await client.assistants.create(
        "approval",
        config={"interrupt_deadline_seconds": 1, "on_interrupt_deadline": {"action": "resume", "value": "auto"}},
        name="auto-approve",
    )
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    started = time.monotonic()
    result = await client.runs.wait(thread_id, assistant["assistant_id"], input={"items": []})
    assert "__interrupt__" in result

    async def resumed():
        runs = await client.runs.list(thread_id)
        return runs if len(runs) == 2 and runs[0]["status"] == "success" else None

    runs = await _until(resumed)
    assert time.monotonic() - started >= 1
    assert runs[0]["metadata"]["resumed_by"] == "interrupt_deadline"
    assert runs[0]["metadata"]["resumed_from"] == runs[1]["run_id"]
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"items": ["draft", "review:auto", "published"]}
    assert (await client.threads.get(thread_id))["status"] == "idle"
    await client.assistants.delete(assistant["assistant_id"])


async def test_deadline_for_human_input_ends_the_run(server):
    """Per run (through `config`, which the SDK passes as is): the parked run ends `timeout`."""
    client = get_client(url=server.url)
    thread_id, _ = await _interrupted(
        client, config={"interrupt_deadline_seconds": 1, "on_interrupt_deadline": {"action": "end"}}
    )

    async def timed_out():
        [run] = await client.runs.list(thread_id)
        return run if run["status"] == "timeout" else None

    await _until(timed_out)
    got = await client.threads.get(thread_id)
    assert got["status"] == "interrupted"  # the question still stands: a late answer still works
    assert (await client.runs.wait(thread_id, "approval", command={"resume": "late"}))["items"][-1] == "published"
