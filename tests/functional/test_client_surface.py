"""What clients see and what they may write (issue 12, part 3): checkpoints revive only allowed
types, state updates are fenced like a step's commit, and error text carries no AWS internals.

One local runtime (moto in-process, the real handlers) and one API instance for the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import ormsgpack
import pytest
from harness import ApiThread
from langgraph.checkpoint.serde.jsonplus import EXT_CONSTRUCTOR_POS_ARGS
from langgraph_sdk import get_client
from moto.dynamodb.responses import DynamoHandler
from sample_events import _admitted_run
from stepgraph.engine.ids import new_run_id
from stepgraph.storage.checkpoints import keys
from stepgraph_local.runtime import LocalRuntime, api_app

GRAPHS = Path(__file__).resolve().parents[1] / "graphs" / "surface.json"


@pytest.fixture(scope="module")
def local() -> Iterator[tuple[LocalRuntime, ApiThread]]:
    # Strict steps: each superstep is its own Step invocation, which reloads the checkpoint.
    runtime = LocalRuntime(config_path=GRAPHS, step_mode="strict").start()
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


async def test_the_graphs_own_state_types_still_load_in_strict_mode(local):
    """The other half: a user's pydantic model in the state revives as itself, in the step that
    reloads the thread (tests/graphs/typed_state.py reads `doc.text`) and in the API's reads."""
    _, api = local
    client = get_client(url=api.url)
    thread_id = (await client.threads.create())["thread_id"]
    values = await client.runs.wait(thread_id, "typed", input={"seen": []})
    assert values == {"doc": {"text": "hello typed world", "words": 3}, "seen": ["Doc"]}
    history = await client.threads.get_history(thread_id, limit=10)
    assert [h["values"].get("doc", {}).get("words") for h in history[:2]] == [3, 0]


# ---------------------------------------------------------------- fenced update_state
async def test_concurrent_state_updates_never_fork_the_thread(local):
    """Bug: update_state read the head and wrote its child unfenced, so updates racing each other
    (or a run admitted meanwhile) each wrote a child of the same checkpoint: the thread forked
    and one update silently vanished from its history. Now each commits with a compare-and-set
    of the head: one of those racing wins, the others get 409 and wrote nothing."""
    _, api = local
    client = get_client(url=api.url)
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "chain", input={"items": []})
    before = {h["checkpoint"]["checkpoint_id"] for h in await client.threads.get_history(thread_id, limit=100)}

    async def update(tag: str) -> int:
        try:
            await client.threads.update_state(thread_id, {"items": [tag]})
        except httpx.HTTPStatusError as exc:
            return exc.response.status_code
        return 200

    applied = 0
    for round_ in range(3):  # a few rounds: a race that an unfenced write loses at least once
        codes = await asyncio.gather(*(update(f"r{round_}u{i}") for i in range(4)))
        assert set(codes) <= {200, 409} and 200 in codes, codes
        applied += codes.count(200)

    history = await client.threads.get_history(thread_id, limit=100)
    created = [h for h in history if h["checkpoint"]["checkpoint_id"] not in before]
    parents = [h["parent_checkpoint"]["checkpoint_id"] for h in created]
    assert len(parents) == len(set(parents)), "two updates wrote children of the same checkpoint"
    # One line of history, one checkpoint per update answered 200 (a 409 wrote nothing).
    ids = [h["checkpoint"]["checkpoint_id"] for h in created]
    assert parents[:-1] == ids[1:] and len(created) == applied
    state = await client.threads.get_state(thread_id)
    assert len(state["values"]["items"]) == 3 + applied


async def test_a_state_update_behind_a_queued_run_is_refused_and_writes_nothing(local):
    """The fence's other half: while a run holds or waits for the thread, an update gets 409."""
    _, api = local
    client = get_client(url=api.url)
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "chain", input={"items": []})
    head = (await client.threads.get_state(thread_id))["checkpoint"]["checkpoint_id"]
    run = await client.runs.create(thread_id, "chain", input={"items": ["later"]}, after_seconds=30)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.threads.update_state(thread_id, {"items": ["edit"]})
    assert refused.value.response.status_code == 409
    assert (await client.threads.get_state(thread_id))["checkpoint"]["checkpoint_id"] == head
    await client.runs.cancel(thread_id, run["run_id"])


# ---------------------------------------------------------------- error text
ACCOUNT = "123456789012"
ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/stepgraph-StepFunctionRole-1A2B3C/stepgraph-StepFunction-4D5E6F"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/stepgraph-CheckpointsTable-7G8H9I"
DENIED = (
    f"An error occurred (AccessDeniedException) when calling the PutItem operation: User: {ROLE} is not "
    f"authorized to perform: dynamodb:PutItem on resource: {TABLE} because no identity-based policy allows "
    "the dynamodb:PutItem action"
)


def _discloses_nothing(text: str) -> None:
    for secret in ("arn:", ACCOUNT, "Traceback", 'File "', "stepgraph/engine"):
        assert secret not in text, f"{secret!r} reached the client: {text}"


async def test_a_graph_error_reaches_the_client_as_its_type_and_message(local):
    _, api = local
    client = get_client(url=api.url)
    thread_id = (await client.threads.create())["thread_id"]
    expected = {"error": "ValueError", "message": "boom: this node always fails"}  # examples/graphs.py
    assert await client.runs.wait(thread_id, "failing", input={"items": []}, raise_error=False) == {
        "__error__": expected
    }
    (run,) = await client.runs.list(thread_id)
    errors = [
        p.data
        async for p in client.runs.join_stream(thread_id, run["run_id"], last_event_id="-1")
        if p.event == "error"
    ]
    assert errors == [expected]
    state = await client.threads.get_state(thread_id)
    (task,) = state["tasks"]
    assert "ValueError" in task["error"] and "boom" in task["error"]
    _discloses_nothing(json.dumps([errors, state]))


async def test_a_step_failing_on_aws_tells_the_client_no_arn_account_or_traceback(local):
    """Bug: when a step crashed on an AWS error past its retries, Finish stored the Lambda error's
    message as the run's error: the run document, runs.join/wait and the stream's `error` event
    showed the role and table ARNs, hence the account id. Now the message is redacted."""
    runtime, api = local
    client = get_client(url=api.url)
    thread_id, run_id = str(uuid.uuid4()), new_run_id()
    _admitted_run(runtime.ctx, thread_id, run_id, "chain", {"items": []})
    # What the state machine's Catch hands Finish after the step's last retry: the Lambda error,
    # with the ClientError's message and our stack trace in its cause.
    cause = {
        "errorMessage": DENIED,
        "errorType": "ClientError",
        "requestId": str(uuid.uuid4()),
        "stackTrace": ['  File "/opt/python/stepgraph/engine/runner.py", line 312, in _run_supersteps\n'],
    }
    event = {
        "run_id": run_id,
        "thread_id": thread_id,
        "outcome": "pending",
        "error": {"Error": "ClientError", "Cause": json.dumps(cause)},
    }
    reply = runtime.aws.client("lambda").invoke(FunctionName="FinishFunction", Payload=json.dumps(event).encode())
    assert "FunctionError" not in reply, reply["Payload"].read()

    run = await client.runs.get(thread_id, run_id)
    assert run["status"] == "error"
    joined = await client.runs.join(thread_id, run_id)
    streamed = [
        p.data async for p in client.runs.join_stream(thread_id, run_id, last_event_id="-1") if p.event == "error"
    ]
    assert joined["__error__"]["error"] == "ClientError" and streamed == [joined["__error__"]]
    assert "not authorized to perform: dynamodb:PutItem" in joined["__error__"]["message"]  # still says what
    _discloses_nothing(json.dumps([run, joined, streamed]))


async def test_an_aws_failure_in_the_api_is_a_500_with_an_id_and_the_details_in_the_log(local, caplog):
    """Bug: an unexpected failure answered "An internal error occurred" with nothing to find it by;
    now the detail carries an id, and the log line with that id has the traceback and the AWS error."""
    _, api = local
    thread_id = (await get_client(url=api.url).threads.create())["thread_id"]
    denied = DENIED.replace("PutItem", "GetItem").replace("CheckpointsTable", "ThreadsTable")
    caplog.set_level(logging.ERROR, logger="stepgraph.client_errors")
    with _dynamodb_fails("GetItem", "ThreadsTable", "AccessDeniedException", denied):
        response = httpx.get(f"{api.url}/threads/{thread_id}")
    assert response.status_code == 500
    detail = response.json()["detail"]
    _discloses_nothing(response.text)
    match = re.fullmatch(r"Internal error \(id ([0-9a-f]{32})\)", detail)
    assert match, detail
    (record,) = [r for r in caplog.records if match.group(1) in r.getMessage()]
    assert record.exc_info and ACCOUNT in str(record.exc_info[1])  # the operator's copy has it all


@contextlib.contextmanager
def _dynamodb_fails(operation: str, table: str, code: str, message: str) -> Iterator[None]:
    """The emulated DynamoDB answers `code` to every `operation` on `table` (as faulty_aws.py
    throttles): our client sees a real AWS error response, not a Python exception we raised."""
    original = DynamoHandler.call_action

    def call_action(self: DynamoHandler) -> Any:
        body = json.loads(self.body or "{}")
        target = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        if target == operation and str(body.get("TableName", "")).endswith(table):
            error = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
            return 400, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(error)
        return original(self)

    with mock.patch.object(DynamoHandler, "call_action", call_action):
        yield
