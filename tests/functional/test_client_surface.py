"""What clients see and what they may write (issue 12, part 3): checkpoints revive only allowed
types, state updates are fenced like a step's commit, and error text carries no AWS internals.

One local runtime (moto in-process, the real handlers) and one API instance for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ormsgpack
import pytest
from harness import ApiThread
from langgraph.checkpoint.serde.jsonplus import EXT_CONSTRUCTOR_POS_ARGS
from langgraph_sdk import get_client
from stepgraph.storage.checkpoints import keys
from stepgraph_local.runtime import LocalRuntime, api_app


@pytest.fixture(scope="module")
def local() -> Iterator[tuple[LocalRuntime, ApiThread]]:
    runtime = LocalRuntime(step_mode="strict").start()
    api = ApiThread(api_app(runtime.ctx))
    yield runtime, api
    api.stop()
    runtime.stop()


def _head_item(runtime: LocalRuntime, thread_id: str) -> dict[str, Any]:
    """The checkpoint item the thread's head names, as stored."""
    ctx = runtime.ctx
    head = ctx.checkpointer.head(thread_id)
    assert head is not None
    key = {"pk": {"S": thread_id}, "sk": {"S": keys.checkpoint_sk("", head)}}
    item: dict[str, Any] = ctx.clients.dynamodb.get_item(
        TableName=ctx.settings.checkpoints_table, Key=key, ConsistentRead=True
    )["Item"]
    return item


# ---------------------------------------------------------------- strict msgpack
async def test_a_checkpoint_naming_an_arbitrary_callable_is_refused(local, tmp_path: Path):
    """Bug: the saver's serializer revived any `module.name(*args)` a blob named (LangGraph's
    permissive default), so whoever could write a checkpoint item ran code in the API and the
    step Lambda on the next read. Now the callable is never imported nor called."""
    runtime, api = local
    client = get_client(url=api.url)
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "chain", input={"items": ["x"]})
    assert (await client.threads.get_state(thread_id))["values"]["items"] == ["x", "a", "b", "c"]

    # The head checkpoint, rewritten so that its `items` value is the ext type LangGraph's
    # serializer uses for "call module.name(*args)": here os.mkdir(<a path>), as an attacker
    # would write os.system(...).
    marker = tmp_path / "created-by-deserialization"
    item = _head_item(runtime, thread_id)
    assert item["type"]["S"] == "msgpack"
    placeholder = "PLACEHOLDER"
    serde = runtime.ctx.checkpointer.serde
    checkpoint = serde.loads_typed(("msgpack", item["data"]["B"]))
    checkpoint["channel_values"]["items"] = placeholder
    _, data = serde.dumps_typed(checkpoint)
    call = ormsgpack.Ext(EXT_CONSTRUCTOR_POS_ARGS, ormsgpack.packb(("os", "mkdir", [str(marker)])))
    crafted = data.replace(ormsgpack.packb(placeholder), ormsgpack.packb(call))
    assert crafted != data
    runtime.ctx.clients.dynamodb.put_item(
        TableName=runtime.ctx.settings.checkpoints_table, Item={**item, "data": {"B": crafted}}
    )

    state = await client.threads.get_state(thread_id)
    assert not marker.exists(), "reading the thread's state called os.mkdir from the checkpoint"
    assert state["values"]["items"] == [str(marker)]  # the arguments, as inert data
    history = await client.threads.get_history(thread_id, limit=10)
    assert not marker.exists()
    # The checkpoints around it load as usual: LangGraph's own types and the graph's state.
    assert [h["values"].get("items") for h in history[1:3]] == [["x", "a", "b"], ["x", "a"]]
