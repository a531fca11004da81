"""IAM, proven by the suite: every AWS call each function and state machine makes while the
suite runs must be allowed by its own policies in template.yaml, on the resource it touched.

moto enforces no IAM, so the local runtime records each call of stepgraph's clients as
(principal, IAM action, resource ARN) (`stepgraph_local.iam`), every process of the session
into one file (`functional/conftest.py`), and these tests, run after all the others, hold that
record against the template (`stepgraph_local.iam_check`). They also run a workload of their
own (a streamed run whose values spill to S3, a state update and a thread copy, an interrupt
resumed by a Command queued behind it, a cancel, a rollback double-text, a delayed run, a thread
deleted while its run is parked), so the check means something when run alone.
The permissions no call used are printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import ApiThread
from langgraph_sdk import get_client
from stepgraph.engine.context import Context, set_context
from stepgraph_local import iam, load_template
from stepgraph_local.iam_check import Report, check
from stepgraph_local.runtime import TEMPLATE, LocalRuntime, api_app

pytestmark = pytest.mark.after_suite

GRAPHS = Path(__file__).resolve().parents[1] / "graphs" / "langgraph.json"
# Threads whose calls have no principal by design: the runtime's start and stop (and this test),
# the SQS poller (the event source mapping's polling), the TTL sweeper (DynamoDB's own) and the
# local EventBridge invoking a rule's or a schedule's target (the events service's).
_UNATTRIBUTED = ("MainThread", "poller-", "ttl-sweeper", "eventbridge")


async def _until(predicate, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await predicate():
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


# Values over the spill threshold go to S3; the workload's are made to, so the spill paths run.
SPILL_THRESHOLD = 512
BIG = "x" * 1024


async def _workload(url: str) -> None:
    client = get_client(url=url)

    async def thread() -> str:
        return (await client.threads.create())["thread_id"]

    async def napping(thread_id: str, tag: str) -> bool:
        state = await client.threads.get_state(thread_id)
        return tag in (state["values"] or {}).get("items", []) and state["next"] == ["nap"]

    later = await thread()  # a delayed run: the delay state machine rings the doorbell
    delayed = await client.runs.create(later, "nap", input={"items": ["later"]}, after_seconds=1)

    streamed = await thread()  # a streamed run whose state and events spill to S3
    parts = [p async for p in client.runs.stream(streamed, "nap", input={"items": [BIG]}, stream_mode="values")]
    assert parts[-1].data["items"] == [BIG, "slept"]
    await client.threads.update_state(streamed, {"items": ["edited"]})
    await client.threads.copy(streamed)

    asked = await thread()  # an interrupt parks the execution; a Command queued behind it resumes it
    await client.runs.create(asked, "ask", input={"items": [BIG]})
    resume = await client.runs.create(asked, "ask", command={"resume": "yes"})
    assert (await client.runs.join(asked, resume["run_id"]))["items"] == [BIG, "answer:yes"]

    busy = await thread()  # a running run cancelled, then one rolled back by a double-text
    first = await client.runs.create(busy, "nap", input={"items": ["r1"], "pause": 0.3})
    await _until(lambda: napping(busy, "r1"))
    await client.runs.cancel(busy, first["run_id"], wait=True)
    second = await client.runs.create(busy, "nap", input={"items": ["r2"], "pause": 0.3})
    await _until(lambda: napping(busy, "r2"))
    third = await client.runs.create(busy, "nap", input={"items": ["r3"]}, multitask_strategy="rollback")
    assert (await client.runs.join(busy, third["run_id"]))["items"] == ["r1", "r3", "slept"]
    with pytest.raises(httpx.HTTPStatusError):
        await client.runs.get(busy, second["run_id"])

    parked = await thread()  # a thread deleted while its run waits on a task token
    await client.runs.wait(parked, "ask", input={"items": [BIG]})
    await client.threads.delete(parked)

    assert (await client.runs.join(later, delayed["run_id"]))["items"] == ["later", "slept"]


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[set[iam.Call], LocalRuntime, set[str]]]:
    """Every call of the session, this module's workload included, and the stack to resolve the
    template's policies against; and the threads of the workload that made unattributed calls."""
    runtime = LocalRuntime(config_path=GRAPHS).start()
    try:
        recorder = iam.recorder()
        assert recorder is not None and recorder.path == Path(os.environ[iam.LOG_VARIABLE])
        before = set(recorder.unattributed)
        # The handlers' and the API's context: the runtime's, with a spill threshold the workload's values pass.
        settings = dataclasses.replace(runtime.ctx.settings, spill_threshold_bytes=SPILL_THRESHOLD)
        ctx = Context(settings, runtime.ctx.notifier)
        set_context(ctx)
        api = ApiThread(api_app(ctx))  # as `stepgraph dev` serves it (as the API function)
        try:
            asyncio.run(_workload(api.url))
        finally:
            api.stop()
        stray = {thread for thread, _ in recorder.unattributed - before if not thread.startswith(_UNATTRIBUTED)}
        yield iam.read_calls(recorder.path), runtime, stray
    finally:
        runtime.stop()


def _check(recorded: tuple[set[iam.Call], LocalRuntime, set[str]], template: dict[str, Any]) -> Report:
    calls, runtime, _ = recorded
    return check(calls, template, runtime.aws.resolve, region=runtime.aws.region)


def test_every_call_of_the_suite_is_allowed_by_its_principals_policies(recorded, iam_report):
    calls, _, stray = recorded
    report = _check(recorded, load_template(TEMPLATE))
    principals = sorted({c.principal for c in calls})
    iam_report.extend([f"{len(calls)} distinct calls by {', '.join(principals)}", *report.lines()])
    if stray:
        pytest.fail(f"calls attributed to no principal, made on threads {sorted(stray)}", pytrace=False)
    if report.denied:
        pytest.fail("calls AWS would deny:\n" + report.denials(), pytrace=False)
    if report.unnamed:
        pytest.fail("Resource * where an ARN can be named:\n" + "\n".join(map(str, report.unnamed)), pytrace=False)


_WRITES = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem")


def test_the_check_fails_when_the_step_function_may_not_write_the_runs_table(recorded):
    template = copy.deepcopy(load_template(TEMPLATE))
    for policy in template["Resources"]["StepFunction"]["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            if statement["Resource"] == {"Fn::GetAtt": ["RunsTable", "Arn"]}:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                statement["Action"] = [a for a in actions if a not in _WRITES]
    report = _check(recorded, template)
    runs_table = recorded[1].aws.resolve({"Fn::GetAtt": ["RunsTable", "Arn"]})
    expected = f"StepFunction: dynamodb:UpdateItem on {runs_table} is not allowed by template.yaml"
    assert expected in report.denials().splitlines(), report.denials()
