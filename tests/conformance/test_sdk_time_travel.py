"""Time travel through langgraph-sdk: history and its filters, state at a checkpoint, subgraph
state, forks by update_state, replays from a checkpoint, and thread copies."""

from __future__ import annotations

import pytest
from langgraph_sdk import get_client

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def _chain_thread(client, items: list[str] | None = None) -> str:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "chain", input={"items": items or ["x"]})
    return thread["thread_id"]


def _ids(history: list[dict]) -> list[str]:
    return [h["checkpoint"]["checkpoint_id"] for h in history]


async def test_history_limit_before_and_metadata_filter(server):
    client = get_client(url=server.url)
    thread_id = await _chain_thread(client)
    everything = await client.threads.get_history(thread_id, limit=100)
    assert [h["metadata"]["step"] for h in everything] == [3, 2, 1, 0, -1]
    assert _ids(await client.threads.get_history(thread_id, limit=2)) == _ids(everything)[:2]
    # before: strictly older than that checkpoint (by id, or by a checkpoint object)
    before = await client.threads.get_history(thread_id, before=everything[1]["checkpoint"]["checkpoint_id"])
    assert _ids(before) == _ids(everything)[2:]
    before_obj = await client.threads.get_history(thread_id, before=everything[3]["checkpoint"], limit=10)
    assert _ids(before_obj) == _ids(everything)[4:]
    [step1] = await client.threads.get_history(thread_id, metadata={"step": 1})
    assert step1["values"] == {"items": ["x", "a"]} and step1["next"] == ["b"]
    [first] = await client.threads.get_history(thread_id, metadata={"source": "input"})
    assert first["metadata"]["step"] == -1
    run_ids = {h["metadata"].get("run_id") for h in everything}
    assert len(run_ids) == 1 and None not in run_ids
    assert await client.threads.get_history(thread_id, metadata={"step": 99}) == []


async def test_state_at_a_checkpoint(server):
    client = get_client(url=server.url)
    thread_id = await _chain_thread(client)
    everything = await client.threads.get_history(thread_id, limit=100)
    old = everything[2]
    state = await client.threads.get_state(thread_id, checkpoint_id=old["checkpoint"]["checkpoint_id"])
    assert state["values"] == {"items": ["x", "a"]} and state["next"] == ["b"]
    assert state["checkpoint"] == old["checkpoint"]
    same = await client.threads.get_state(thread_id, checkpoint=old["checkpoint"])
    assert same["values"] == state["values"]
    assert (await client.threads.get_state(thread_id))["values"] == {"items": ["x", "a", "b", "c"]}


async def test_subgraph_state_and_history(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    result = await client.runs.wait(thread_id, "nested", input={"items": []})
    assert result["items"] == ["before"] and result["__interrupt__"][0]["value"] == {"question": "ask?"}
    flat = await client.threads.get_state(thread_id)
    assert flat["next"] == ["child"] and flat["tasks"][0]["state"] is None
    ns = flat["tasks"][0]["checkpoint"]["checkpoint_ns"] if flat["tasks"][0]["checkpoint"] else None
    deep = await client.threads.get_state(thread_id, subgraphs=True)
    [task] = deep["tasks"]
    child = task["state"]
    assert task["name"] == "child" and child["values"] == {"items": ["before", "think"]}
    assert child["next"] == ["ask"]
    assert child["interrupts"][0]["value"] == {"question": "ask?"}
    child_ns = child["checkpoint"]["checkpoint_ns"]
    assert child_ns.startswith("child:") and (ns is None or ns == child_ns)
    # The subgraph's own history, through the `checkpoint` filter.
    sub_history = await client.threads.get_history(thread_id, checkpoint={"checkpoint_ns": child_ns}, limit=10)
    assert sub_history and all(h["checkpoint"]["checkpoint_ns"] == child_ns for h in sub_history)
    assert sub_history[0]["values"] == {"items": ["before", "think"]}
    done = await client.runs.wait(thread_id, "nested", command={"resume": "yes"})
    # The subgraph shares the parent's `items` reducer, so its whole list is added back (LangGraph's rule).
    assert done == {"items": ["before", "before", "think", "ask:yes", "after"]}


async def test_update_state_forks_and_a_run_continues_the_fork(server):
    client = get_client(url=server.url)
    thread_id = await _chain_thread(client)
    original = await client.threads.get_history(thread_id, limit=100)
    after_a = next(h for h in original if h["next"] == ["b"])
    forked = await client.threads.update_state(
        thread_id, {"items": ["patched"]}, as_node="a", checkpoint_id=after_a["checkpoint"]["checkpoint_id"]
    )
    fork_id = forked["checkpoint"]["checkpoint_id"]
    fork = await client.threads.get_state(thread_id, checkpoint_id=fork_id)
    assert fork["values"] == {"items": ["x", "a", "patched"]} and fork["next"] == ["b"]
    assert fork["parent_checkpoint"]["checkpoint_id"] == after_a["checkpoint"]["checkpoint_id"]
    assert (await client.threads.get_state(thread_id))["checkpoint"]["checkpoint_id"] == fork_id  # the new head
    result = await client.runs.wait(thread_id, "chain", input=None)
    assert result == {"items": ["x", "a", "patched", "b", "c"]}
    # The original branch is intact in history.
    history = await client.threads.get_history(thread_id, limit=100)
    assert set(_ids(original)) <= set(_ids(history))
    old_final = await client.threads.get_state(thread_id, checkpoint_id=original[0]["checkpoint"]["checkpoint_id"])
    assert old_final["values"] == {"items": ["x", "a", "b", "c"]}
    # update_state through a checkpoint object, on the head
    again = await client.threads.update_state(thread_id, {"items": ["tail"]}, checkpoint=history[0]["checkpoint"])
    assert (await client.threads.get_state(thread_id, checkpoint_id=again["checkpoint"]["checkpoint_id"]))["values"][
        "items"
    ][-1] == "tail"


async def test_run_from_a_checkpoint_replays_and_keeps_the_original_branch(server):
    client = get_client(url=server.url)
    thread_id = await _chain_thread(client)
    original = await client.threads.get_history(thread_id, limit=100)
    after_a = next(h for h in original if h["next"] == ["b"])
    parts = [
        (p.event, p.data)
        async for p in client.runs.stream(
            thread_id, "chain", input=None, checkpoint_id=after_a["checkpoint"]["checkpoint_id"], stream_mode="updates"
        )
    ]
    assert parts[1:] == [("updates", {"b": {"items": ["b"]}}), ("updates", {"c": {"items": ["c"]}})]
    history = await client.threads.get_history(thread_id, limit=100)
    assert set(_ids(original)) <= set(_ids(history))
    # LangGraph's replay: a "fork" copy of after_a, then b and c again, on a new branch.
    assert len(history) == len(original) + 3
    head, replayed_b, fork = history[:3]
    assert head["values"] == {"items": ["x", "a", "b", "c"]}
    assert replayed_b["next"] == ["c"] and fork["metadata"]["source"] == "fork"
    assert fork["parent_checkpoint"]["checkpoint_id"] == after_a["checkpoint"]["checkpoint_id"]
    # The `checkpoint` form, with new input from an early checkpoint.
    start = original[-1]  # the input checkpoint
    result = await client.runs.wait(thread_id, "chain", input=None, checkpoint=start["checkpoint"])
    assert result == {"items": ["x", "a", "b", "c"]}


async def test_copy_thread_with_history(server):
    client = get_client(url=server.url)
    thread_id = await _chain_thread(client)
    source_history = await client.threads.get_history(thread_id, limit=100)
    copy = await client.threads.copy(thread_id)
    assert copy["thread_id"] != thread_id and copy["values"] == {"items": ["x", "a", "b", "c"]}
    copied = await client.threads.get_history(copy["thread_id"], limit=100)
    assert [h["values"] for h in copied] == [h["values"] for h in source_history]
    assert _ids(copied) == _ids(source_history)
    assert all(h["checkpoint"]["thread_id"] == copy["thread_id"] for h in copied)
    # The copy lives on its own.
    assert await client.runs.wait(copy["thread_id"], "chain", input={"items": ["y"]}) == {
        "items": ["x", "a", "b", "c", "y", "a", "b", "c"]
    }
    assert (await client.threads.get_state(thread_id))["values"] == {"items": ["x", "a", "b", "c"]}
    # An interrupted thread copies with its interrupt, and resumes on its own execution.
    source = await client.threads.create()
    await client.runs.wait(source["thread_id"], "approval", input={"items": []})
    parked_copy = await client.threads.copy(source["thread_id"])
    assert parked_copy["status"] == "interrupted"
    assert await client.runs.wait(parked_copy["thread_id"], "approval", command={"resume": "c"}) == {
        "items": ["draft", "review:c", "published"]
    }
    assert (await client.threads.get(source["thread_id"]))["status"] == "interrupted"
