"""No run stuck, no history cap (issue 11): a long run goes on in fresh executions, an execution
that ends without Finish is reaped, and a queued run whose doorbell was lost still starts.

One strict-mode runtime for the module, with a low hand-over threshold, the template's schedules
(the sweeper) firing every 0.25 s and a 0.5 s grace for lost doorbells.
"""

from __future__ import annotations

import json
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import until
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from stepgraph.api.runs import create_run
from stepgraph.api.schemas import RunCreate
from stepgraph.api.threads import new_thread
from stepgraph.engine import base_run
from stepgraph.engine.graphs import system_assistant_id
from stepgraph.engine.handover import history_bound
from stepgraph.engine.ids import new_run_id
from stepgraph.engine.state import get_thread_state
from stepgraph.storage.events import END
from stepgraph.storage.queue import queue_entry
from stepgraph_local.emulator import _stepfunctions, lambda_hook
from stepgraph_local.runtime import LocalRuntime, QueuePoller

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
HANDOVER_AFTER = 20
GRACE_SECONDS = 0.5


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STEPGRAPH_LOST_DOORBELL_SECONDS", str(GRACE_SECONDS))
        started = LocalRuntime(
            step_mode="strict", parameters={"HandoverAfter": str(HANDOVER_AFTER)}, schedule_seconds=0.25
        ).start()
        yield started
        started.stop()


# ---------------------------------------------------------------- helpers
def _run(
    runtime: LocalRuntime, graph: str, payload: dict[str, Any] | None, thread_id: str | None = None, **body: Any
) -> dict[str, Any]:
    """A run of `graph` with `payload` as its input (None: no input, a resume)."""
    if thread_id is None:
        thread_id = str(uuid.uuid4())
        new_thread(runtime.ctx, thread_id, {})
    if payload is not None:
        body["input"] = payload
    return create_run(runtime.ctx, thread_id, RunCreate(assistant_id=graph, stream_mode=["values"], **body))


def _until(predicate, timeout: float = 20, what: str = "condition"):
    return until(predicate, timeout, what)


def _record(runtime: LocalRuntime, run: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = runtime.ctx.runs.get(run["thread_id"], run["run_id"]) or {}
    return record


def _ended(runtime: LocalRuntime, run: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        record = _record(runtime, run)
        return record if record.get("status") not in ("pending", "running") else None

    ended_run: dict[str, Any] = _until(ended, timeout, f"run {run['run_id']} to end")
    return ended_run


def _executions(runtime: LocalRuntime, run_id: str) -> list[dict[str, Any]]:
    """The run's executions in the order it went through them: its own, then its hand-overs."""
    sfn = runtime.aws.client("stepfunctions")
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=runtime.ctx.settings.state_machine_arn)
    mine = [e for page in pages for e in page["executions"] if e["name"].startswith(run_id)]
    return sorted(mine, key=lambda e: int(e["name"].removeprefix(run_id).removeprefix("-") or 0))


def _history(runtime: LocalRuntime, arn: str) -> list[dict[str, Any]]:
    sfn = runtime.aws.client("stepfunctions")
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
    return [event for page in pages for event in page["events"]]


def _entered(events: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def _stream(runtime: LocalRuntime, run_id: str) -> list[Any]:
    events, after = [], 0
    while page := runtime.ctx.events.read(run_id, after=after):
        events += page
        after = page[-1].seq
    return events


def _delivered(runtime: LocalRuntime, function: str) -> list[tuple[dict[str, Any], Any]]:
    assert runtime.aws.events is not None
    return [(event, reply) for name, event, reply in list(runtime.aws.events.delivered) if name == function]


def _invoke(runtime: LocalRuntime, function: str, event: dict[str, Any]) -> Any:
    reply = runtime.aws.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    payload = json.loads(reply["Payload"].read())
    assert "FunctionError" not in reply, payload
    return payload


def _status_change(runtime: LocalRuntime, execution: str, status: str, thread_id: str, run_id: str) -> dict[str, Any]:
    """An execution status change as EventBridge delivers it (events/reaper.json's shape)."""
    event = json.loads((ROOT / "events" / "reaper.json").read_text())
    run_input = {"run_id": run_id, "thread_id": thread_id, "step": {"status": "pending"}, "error": None}
    event["detail"].update(
        executionArn=execution,
        stateMachineArn=runtime.ctx.settings.state_machine_arn,
        name=execution.rsplit(":", 1)[1],
        status=status,
        input=json.dumps(run_input),
        error=None,
        cause=None,
    )
    return event


# ---------------------------------------------------------------- continue as new
def test_a_long_strict_run_goes_on_in_fresh_executions_each_below_its_history_bound(runtime):
    steps = 200
    run = _run(runtime, "loop", {"steps": steps})
    run_id = run["run_id"]
    assert _ended(runtime, run, timeout=90)["status"] == "success"

    def all_ended() -> list[dict[str, Any]] | None:
        found = _executions(runtime, run_id)
        return found if all(e["status"] != "RUNNING" for e in found) else None

    executions = _until(all_ended, what="its last execution to end")
    names = [e["name"] for e in executions]
    assert names == [run_id] + [f"{run_id}-{n}" for n in range(1, len(names))]
    assert len(names) >= steps // HANDOVER_AFTER  # 202 Step invocations, 20 an execution
    step_invocations, bound = 0, history_bound(HANDOVER_AFTER)
    for i, execution in enumerate(executions):
        assert execution["status"] == "SUCCEEDED"
        events = _history(runtime, execution["executionArn"])
        states = _entered(events)
        assert len(events) <= bound, f"{execution['name']}: {len(events)} history events, bound {bound}"
        assert states.count("Step") <= HANDOVER_AFTER
        assert states[-1] == ("Done" if i == len(executions) - 1 else "HandedOver")  # only the last one finishes
        step_invocations += states.count("Step")
    assert step_invocations == steps + 2  # strict: one per checkpointed superstep, none repeated

    checkpoints = list(runtime.ctx.checkpointer.list({"configurable": {"thread_id": run["thread_id"]}}))
    assert sorted(c.metadata["step"] for c in checkpoints) == list(range(-1, steps + 1))
    assert checkpoints[0].checkpoint["channel_values"]["count"] == steps
    # One stream across every execution: each superstep's values once, in order, then its end.
    stream = _stream(runtime, run_id)
    assert [e.seq for e in stream[:-1]] == list(range(1, len(stream)))
    assert [e.data["count"] for e in stream if e.event == "values" and "count" in e.data] == list(range(1, steps + 1))
    assert stream[-1].event == END and stream[-1].data == {"status": "success"}


def test_a_thread_resumed_again_and_again_moves_its_parked_execution_on(runtime):
    # Each resume continues the parked execution (a Resume and a Step: 2 of its budget of 20),
    # so a long human-in-the-loop session would fill one execution's history too.
    ctx, sfn = runtime.ctx, runtime.aws.client("stepfunctions")
    pause = {"interrupt_after": ["tick"]}
    runs = [_run(runtime, "loop", {"steps": 1000}, **pause)]
    thread_id, carriers = runs[0]["thread_id"], []
    for _ in range(HANDOVER_AFTER // 2 + 2):
        assert _ended(runtime, runs[-1])["status"] == "success"  # stopped after its tick
        _until(lambda: (ctx.threads.get(thread_id) or {}).get("task_token"), what="the park")
        carriers.append(_record(runtime, runs[-1])["execution"])
        runs.append(_run(runtime, "loop", None, thread_id=thread_id, **pause))
    assert _ended(runtime, runs[-1])["status"] == "success"
    moved = [i for i in range(1, len(carriers)) if carriers[i] != carriers[i - 1]]
    assert len(moved) == 1, carriers  # one hand-over, by the run that spent the budget
    old, new = carriers[moved[0] - 1], carriers[moved[0]]
    assert new == f"{old.rsplit(':', 1)[0]}:{runs[moved[0]]['run_id']}-1"
    _until(lambda: sfn.describe_execution(executionArn=old)["status"] == "SUCCEEDED", what="the old execution to end")
    assert _entered(_history(runtime, old))[-1] == "HandedOver"
    assert _entered(_history(runtime, new))[:3] == ["Start", "Park", "Resume"]  # parked at once, then resumed
    for arn in (old, new):
        assert len(_history(runtime, arn)) <= history_bound(HANDOVER_AFTER)
    snapshot = get_thread_state(ctx, thread_id, "loop")
    assert snapshot.values["count"] == len(runs) and snapshot.next == ("tick",)  # one tick a run, none lost


# ---------------------------------------------------------------- the reaper
def test_an_execution_stopped_from_outside_frees_its_thread_within_seconds(runtime):
    ctx, sfn = runtime.ctx, runtime.aws.client("stepfunctions")
    endless = _run(runtime, "loop", {"steps": 10_000_000})
    thread_id = endless["thread_id"]
    _until(lambda: _record(runtime, endless).get("execution"), what="its first superstep")
    while True:  # it hands over every 20 supersteps: stop whichever execution carries it now
        carrier = _record(runtime, endless)["execution"]
        sfn.stop_execution(executionArn=carrier, error="Operator", cause="stopped by hand")
        stopped_at = time.monotonic()
        status = _until(
            lambda arn=carrier: (s := sfn.describe_execution(executionArn=arn)["status"]) != "RUNNING" and s,
            what="the stop",
        )
        if status == "ABORTED":
            # The reaper hears of it through EventBridge and ends the run it carried...
            [(event, reply)] = _until(
                lambda arn=carrier: [
                    (e, r) for e, r in _delivered(runtime, "ReaperFunction") if e["detail"]["executionArn"] == arn
                ],
                what="the reaper",
            )
            if reply == {"reaped": endless["run_id"]}:
                break
            assert reply == {"reaped": None}
        # ... unless it handed the run over first (or its Step was doing so): the run goes on in
        # its fresh execution, untouched.
        assert _record(runtime, endless)["status"] == "running"
    record = _record(runtime, endless)
    assert record["status"] == "error"
    assert record["error"]["error"] in ("Operator", "ExecutionAborted")  # moto's StopExecution drops the error
    stream = _stream(runtime, endless["run_id"])
    assert stream[-1].event == END and stream[-1].data == {"status": "error"}
    # The thread takes the next run at once.
    after = _run(runtime, "chain", {"items": ["next"]}, thread_id=thread_id)
    assert _ended(runtime, after, timeout=10)["status"] == "success"
    waited = time.monotonic() - stopped_at
    assert waited < 5, f"the thread took {waited:.1f}s to run the next run"
    _until(lambda: ctx.threads.get(thread_id)["status"] == "idle", what="the thread to settle")

    # EventBridge delivers at least once: the same event again changes nothing.
    assert _invoke(runtime, "ReaperFunction", event) == {"reaped": None}
    assert _record(runtime, endless)["status"] == "error" and _record(runtime, after)["status"] == "success"
    assert _stream(runtime, endless["run_id"]) == stream
    assert ctx.threads.get(thread_id)["status"] == "idle" and not ctx.queue.state(thread_id).holder


def test_a_lost_status_change_is_repaired_by_the_next_doorbell(runtime):
    # Step Functions delivers its events to EventBridge at best effort: when one is lost, the
    # next doorbell on the thread (a new run, or the sweeper's) finds the dead execution.
    sfn = runtime.aws.client("stepfunctions")
    assert runtime.aws.events is not None
    listener = runtime.aws.events._execution_ended
    endless = _run(runtime, "loop", {"steps": 10_000_000})
    _until(lambda: _record(runtime, endless).get("execution"), what="its first superstep")
    _stepfunctions.remove_listener(listener)  # the status change gets lost
    try:
        while True:
            carrier = _record(runtime, endless)["execution"]
            sfn.stop_execution(executionArn=carrier)
            _until(lambda arn=carrier: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING")
            time.sleep(0.3)  # the Step in flight when it stopped returns (it may have handed over)
            if _record(runtime, endless)["execution"] == carrier:
                break
    finally:
        _stepfunctions.on_execution_end(listener)
    assert _record(runtime, endless)["status"] == "running"  # stuck: nothing told the reaper
    after = _run(runtime, "chain", {"items": ["next"]}, thread_id=endless["thread_id"])
    assert _ended(runtime, after, timeout=10)["status"] == "success"
    record = _record(runtime, endless)
    assert record["status"] == "error" and record["error"]["error"] == "ExecutionAborted"


def test_an_execution_that_ends_handing_its_run_over_leaves_the_run_to_the_next_one(runtime):
    # The Step recorded the hand-over, then died before starting the next execution, and its own
    # execution was stopped: the reaper starts the recorded one, and the run goes on there.
    ctx = runtime.ctx
    thread_id = str(uuid.uuid4())
    new_thread(ctx, thread_id, {})
    run = base_run(thread_id, ctx.assistants.get(system_assistant_id("chain")), {"input": {"items": ["x"]}})
    run["run_id"] = new_run_id()
    entry = queue_entry(run["run_id"], int(time.time() * 1000))
    ctx.queue.insert(run, entry=entry, tail=None, reject=False)
    assert ctx.queue.admit(thread_id, run["run_id"], entry, task_token=None) == "admitted"  # no doorbell
    old = ctx.executions.arn(run["run_id"])
    new = f"{old}-1"
    handover = {"from": old, "execution": new, "number": 1, "status": "continue", "park_timeout_seconds": 60}
    assert ctx.runs.hand_over(thread_id, run["run_id"], carrier=old, handover=handover)
    event = _status_change(runtime, old, "ABORTED", thread_id, run["run_id"])
    assert _invoke(runtime, "ReaperFunction", event) == {"reaped": None}
    assert _ended(runtime, run)["status"] == "success"
    assert [e["name"] for e in _executions(runtime, run["run_id"])] == [f"{run['run_id']}-1"]
    sfn = runtime.aws.client("stepfunctions")
    _until(lambda: sfn.describe_execution(executionArn=new)["status"] == "SUCCEEDED", what="its execution to end")
    assert _entered(_history(runtime, new))[-2:] == ["Finish", "Done"]


def test_an_end_that_is_not_the_runs_own_reaps_nothing(runtime):
    ctx = runtime.ctx
    run = _run(runtime, "loop", {"steps": HANDOVER_AFTER + 5})
    first = ctx.executions.arn(run["run_id"])
    _until(lambda: _record(runtime, run).get("handover"), what="its first hand-over")
    # The execution it left, as if stopped afterwards: the run lives on in the next one.
    event = _status_change(runtime, first, "ABORTED", run["thread_id"], run["run_id"])
    assert _invoke(runtime, "ReaperFunction", event) == {"reaped": None}
    assert _ended(runtime, run)["status"] == "success"
    # Its last execution's end reported late, as FAILED: the run finished already.
    late = _status_change(runtime, _record(runtime, run)["execution"], "FAILED", run["thread_id"], run["run_id"])
    assert _invoke(runtime, "ReaperFunction", late) == {"reaped": None}
    assert _record(runtime, run)["status"] == "success"


def test_finish_failing_past_its_retries_fails_the_execution_and_the_reaper_ends_the_run(runtime, monkeypatch):
    # The state machine's Retry waits are real seconds (1+2+4+8+16 for Finish): moto's retrier
    # sleeps a hundredth of them here; the waits it asked for are kept to check the policy ran.
    waits: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(
        retrier_decl, "time", types.SimpleNamespace(sleep=lambda s: (waits.append(s), real_sleep(s / 100)))
    )

    def failing_finish(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("injected: Finish cannot reach its table")

    lambda_hook.register("FinishFunction", failing_finish)
    try:
        run = _run(runtime, "chain", {"items": []})
        record = _ended(runtime, run)
    finally:
        lambda_hook.register_source("FinishFunction", ROOT / "functions" / "finish", "app.handler")
    assert record["status"] == "error"
    assert record["error"] == {"error": "Stepgraph.FinishFailed", "message": "injected: Finish cannot reach its table"}
    arn = runtime.ctx.executions.arn(run["run_id"])
    assert runtime.aws.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "FAILED"
    assert _entered(_history(runtime, arn))[-2:] == ["Finish", "FinishFailed"]
    assert waits == [1, 2, 4, 8, 16]  # Finish's five retries ran out before its Catch
    # The thread took the run's error and is free: its next run runs.
    _until(lambda: runtime.ctx.threads.get(run["thread_id"])["status"] == "error", what="the thread to settle")
    again = _run(runtime, "chain", {"items": ["again"]}, thread_id=run["thread_id"])
    assert _ended(runtime, again)["status"] == "success"


# ---------------------------------------------------------------- the sweeper
def test_a_queued_run_whose_doorbell_was_lost_still_starts(runtime):
    queue_url = runtime.ctx.settings.run_queue_url
    runtime.poller.stop()  # dispatch sees nothing until the message is gone
    runtime.poller.join()
    try:
        run = _run(runtime, "chain", {"items": ["late"]})
        sqs = runtime.aws.client("sqs")
        # The doorbell is lost at the queue (as a message moved to the dead-letter queue is).
        lost = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
        assert [json.loads(m["Body"])["thread_id"] for m in lost] == [run["thread_id"]]
        for message in lost:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        assert _record(runtime, run)["status"] == "pending"
        assert runtime.aws.events is not None
        runtime.aws.events.delivered.clear()
    finally:
        runtime.poller = QueuePoller(queue_url, "DispatchFunction", runtime.aws.client)
        runtime.poller.start()
    assert _ended(runtime, run, timeout=10)["status"] == "success"
    sweeps = [reply for _, reply in _delivered(runtime, "SweeperFunction")]
    assert any(reply["rung"] >= 1 for reply in sweeps), sweeps
    _until(lambda: runtime.ctx.threads.get(run["thread_id"])["status"] == "idle", what="the thread to settle")
