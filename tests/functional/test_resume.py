"""Human in the loop on task tokens, seen from moto's side: a resume continues the parked
execution itself (SendTaskSuccess), new input abandons it, and the deadline for human input
fires through Park's timeout."""

from __future__ import annotations

import json
import uuid

import pytest
from harness import until
from stepgraph.api.runs import create_run
from stepgraph.api.schemas import RunCreate
from stepgraph.api.threads import new_thread
from stepgraph.engine import delete_thread
from stepgraph.engine.state import get_thread_state
from stepgraph_local.runtime import LocalRuntime


@pytest.fixture(scope="module")
def runtime():
    """One local runtime for the module (each test uses its own threads): saves a start/stop each."""
    started = LocalRuntime(step_mode="batched").start()
    yield started
    started.stop()


def _thread(runtime) -> str:
    thread_id = str(uuid.uuid4())
    new_thread(runtime.ctx, thread_id, {})
    return thread_id


def _start(runtime, thread_id: str, **body) -> dict:
    return create_run(runtime.ctx, thread_id, RunCreate(**body))


def _until(predicate, timeout: float = 15, what: str = "condition"):
    return until(predicate, timeout, what)


def _ended(runtime, run: dict) -> dict:
    ctx = runtime.ctx

    def ended():
        current = ctx.runs.get(run["thread_id"], run["run_id"])
        return current if current["status"] not in ("pending", "running") else None

    return _until(ended, what=f"run {run['run_id']} to end")


def _parked(runtime, thread_id: str) -> dict:
    return _until(lambda: (t := runtime.ctx.threads.get(thread_id)).get("task_token") and t, what="the park")


def _execution(runtime, run_id: str, *, finished: bool = True) -> tuple[str, list[dict]]:
    sfn = runtime.aws.client("stepfunctions")
    arn = runtime.ctx.executions.arn(run_id)
    if finished:
        _until(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", what="the execution to end")
    status = sfn.describe_execution(executionArn=arn)["status"]
    return status, sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]


def _states(events: list[dict]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def _has_execution(runtime, run_id: str) -> bool:
    sfn = runtime.aws.client("stepfunctions")
    try:
        sfn.describe_execution(executionArn=runtime.ctx.executions.arn(run_id))
    except sfn.exceptions.ExecutionDoesNotExist:
        return False
    return True


def test_resume_continues_the_parked_execution(runtime):
    thread_id = _thread(runtime)
    first = _start(runtime, thread_id, assistant_id="approval", input={"items": []})
    assert _ended(runtime, first)["status"] == "success"
    parked = _parked(runtime, thread_id)
    assert parked["status"] == "interrupted" and parked["parked_run_id"] == first["run_id"]
    status, events = _execution(runtime, first["run_id"], finished=False)
    assert status == "RUNNING" and _states(events)[-1] == "Park"

    resume = _start(runtime, thread_id, assistant_id="approval", command={"resume": "yes"})
    assert _ended(runtime, resume)["status"] == "success"
    status, events = _execution(runtime, first["run_id"])
    assert status == "SUCCEEDED"
    # One execution: it waited on the task token, SendTaskSuccess released it, and the same
    # execution ran the resume's supersteps as the new run.
    assert _states(events) == ["Start", "Step", "Route", "Park", "Resume", "Step", "Route", "Finish", "Done"]
    kinds = [e["type"] for e in events]
    assert "TaskSubmitted" in kinds and "TaskSucceeded" in kinds
    park_submitted = next(
        e
        for e in events
        if e["type"] == "TaskScheduled" and "waitForTaskToken" in e["taskScheduledEventDetails"]["resource"]
    )
    succeeded = next(e for e in events if e["type"] == "TaskSucceeded" and e["id"] > park_submitted["id"])
    output = json.loads(succeeded["taskSucceededEventDetails"]["output"])
    assert output == {"run_id": resume["run_id"], "command": {"resume": "yes"}}  # never state
    assert not _has_execution(runtime, resume["run_id"])
    snapshot = get_thread_state(runtime.ctx, thread_id, "approval")
    assert snapshot.values == {"items": ["draft", "review:yes", "published"]}
    thread = runtime.ctx.threads.get(thread_id)
    assert thread["status"] == "idle" and "task_token" not in thread


def test_continuing_after_interrupt_before_resumes_the_parked_execution(runtime):
    """No input and no command (the SDK's `input=None`): continue the same execution too."""
    thread_id = _thread(runtime)
    first = _start(runtime, thread_id, assistant_id="chain", input={"items": []}, interrupt_before=["b"])
    _ended(runtime, first)
    _parked(runtime, thread_id)
    go_on = _start(runtime, thread_id, assistant_id="chain")
    assert _ended(runtime, go_on)["status"] == "success"
    status, events = _execution(runtime, first["run_id"])
    assert status == "SUCCEEDED" and "Resume" in _states(events)
    assert not _has_execution(runtime, go_on["run_id"])
    assert get_thread_state(runtime.ctx, thread_id, "chain").values == {"items": ["a", "b", "c"]}


def test_new_input_abandons_the_parked_execution(runtime):
    thread_id = _thread(runtime)
    first = _start(runtime, thread_id, assistant_id="approval", input={"items": []})
    _ended(runtime, first)
    _parked(runtime, thread_id)
    second = _start(runtime, thread_id, assistant_id="approval", input={"items": ["again"]})
    assert _ended(runtime, second)["status"] == "success"
    status, events = _execution(runtime, first["run_id"])
    assert status == "SUCCEEDED"
    assert _states(events)[-3:] == ["Route", "Park", "Abandoned"]
    assert any(e["type"] == "TaskFailed" and e["taskFailedEventDetails"]["error"] == "Abandoned" for e in events)
    assert _has_execution(runtime, second["run_id"])  # a fresh execution for the new input


def test_deadline_resumes_in_the_same_execution(runtime):
    thread_id = _thread(runtime)
    first = _start(
        runtime,
        thread_id,
        assistant_id="approval",
        input={"items": []},
        interrupt_deadline_seconds=1,
        on_interrupt_deadline={"action": "resume", "value": "auto"},
    )
    _ended(runtime, first)
    _parked(runtime, thread_id)
    status, events = _execution(runtime, first["run_id"])  # the deadline passes after 1 s
    assert status == "SUCCEEDED"
    assert _states(events) == [
        "Start",
        "Step",
        "Route",
        "Park",
        "Expire",
        "AfterExpire",
        "ResumeAfterExpire",
        "Step",
        "Route",
        "Finish",
        "Done",
    ]
    assert any(e["type"] == "TaskTimedOut" for e in events)
    snapshot = get_thread_state(runtime.ctx, thread_id, "approval")
    assert snapshot.values == {"items": ["draft", "review:auto", "published"]}
    runs = runtime.ctx.runs.list(thread_id)
    assert [r["status"] for r in runs] == ["success", "success"]
    assert runs[0]["metadata"]["resumed_from"] == first["run_id"]
    assert runs[0]["metadata"]["resumed_by"] == "interrupt_deadline"
    assert runtime.ctx.threads.get(thread_id)["status"] == "idle"


def test_deadline_end_marks_the_run_timeout(runtime):
    thread_id = _thread(runtime)
    first = _start(runtime, thread_id, assistant_id="approval", input={"items": []}, interrupt_deadline_seconds=1)
    _ended(runtime, first)
    _parked(runtime, thread_id)
    status, events = _execution(runtime, first["run_id"])
    assert status == "SUCCEEDED" and _states(events)[-3:] == ["Expire", "AfterExpire", "Done"]
    assert runtime.ctx.runs.get(thread_id, first["run_id"])["status"] == "timeout"
    thread = runtime.ctx.threads.get(thread_id)
    # The interrupt is still there: a late human resumes in a fresh execution.
    assert thread["status"] == "interrupted" and "task_token" not in thread
    late = _start(runtime, thread_id, assistant_id="approval", command={"resume": "late"})
    assert _ended(runtime, late)["status"] == "success"
    assert _has_execution(runtime, late["run_id"])
    assert get_thread_state(runtime.ctx, thread_id, "approval").values["items"][-2:] == ["review:late", "published"]


def test_deleting_a_parked_thread_releases_its_execution(runtime):
    thread_id = _thread(runtime)
    first = _start(runtime, thread_id, assistant_id="approval", input={"items": []})
    _ended(runtime, first)
    _parked(runtime, thread_id)
    delete_thread(runtime.ctx, thread_id)
    status, events = _execution(runtime, first["run_id"])
    assert status == "SUCCEEDED" and _states(events)[-1] == "Abandoned"


@pytest.mark.parametrize("action", ["resume", "end"])
def test_expire_is_idempotent(runtime, action):
    """Finish(expired) delivered twice does the same thing once."""
    from stepgraph.engine.deadlines import expire_parked_run

    ctx = runtime.ctx
    thread_id = _thread(runtime)
    deadline = {"action": action, "value": "auto"}
    first = _start(runtime, thread_id, assistant_id="approval", input={"items": []}, on_interrupt_deadline=deadline)
    _ended(runtime, first)
    _parked(runtime, thread_id)
    # Drive the expiry by hand, twice; the execution itself still waits (its deadline is a year).
    once = expire_parked_run(ctx, first["run_id"], thread_id)
    twice = expire_parked_run(ctx, first["run_id"], thread_id)
    assert once == twice and (once is not None) == (action == "resume")
    ctx.clients.sfn.send_task_failure(taskToken=_execution_token(runtime, first["run_id"]), error="Abandoned")
    if action == "resume":
        assert ctx.threads.get(thread_id)["active_run_id"] == once
        ctx.runs.transition(thread_id, once, to="success", expected=("running",))
        ctx.threads.release_lease(thread_id, once, status="idle")


def _execution_token(runtime, run_id: str) -> str:
    from stepgraph_local.aws import _pending_task_tokens

    arn = runtime.ctx.executions.arn(run_id)
    [token] = _pending_task_tokens(runtime.aws.account_id, runtime.aws.region, {arn})
    return token
