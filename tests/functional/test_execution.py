"""The state machine really runs the graph: moto's execution history, duplicate steps."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from stepgraph.api.runs import create_run
from stepgraph.api.schemas import RunCreate
from stepgraph.api.threads import new_thread
from stepgraph.engine import base_run
from stepgraph.engine.graphs import system_assistant_id
from stepgraph.engine.ids import new_run_id
from stepgraph.storage.queue import queue_entry


def _run_to_end(runtime, graph_id: str, payload: dict, timeout: float = 30) -> dict:
    ctx = runtime.ctx
    thread_id = str(uuid.uuid4())
    new_thread(ctx, thread_id, {})
    run = create_run(ctx, thread_id, RunCreate(assistant_id=graph_id, input=payload))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = ctx.runs.get(thread_id, run["run_id"])
        if current["status"] not in ("pending", "running"):
            return current
        time.sleep(0.02)
    raise AssertionError(f"run did not end: {current}")


def _history(runtime, run_id: str) -> list[dict]:
    sfn = runtime.aws.client("stepfunctions")
    arn = runtime.ctx.settings.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
    for _ in range(200):
        if sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
            break
        time.sleep(0.02)
    return sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]


def _entered(events: list[dict]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def test_strict_mode_invokes_step_once_per_superstep(strict_runtime):
    run = _run_to_end(strict_runtime, "chain", {"items": ["x"]})
    assert run["status"] == "success"
    states = _entered(_history(strict_runtime, run["run_id"]))
    # 5 checkpointed supersteps (input, a, b, c, final): Step, Route each time, then Finish.
    assert states == ["Start", *["Step", "Route"] * 5, "Finish", "Done"]
    history = list(strict_runtime.ctx.checkpointer.list({"configurable": {"thread_id": run["thread_id"]}}))
    assert len(history) == 5


def test_batched_mode_runs_many_supersteps_per_invocation(batched_runtime):
    run = _run_to_end(batched_runtime, "loop", {"steps": 30})
    assert run["status"] == "success"
    states = _entered(_history(batched_runtime, run["run_id"]))
    assert states == ["Start", "Step", "Route", "Finish", "Done"]
    history = list(batched_runtime.ctx.checkpointer.list({"configurable": {"thread_id": run["thread_id"]}}))
    assert len(history) == 32  # input + 30 ticks + final: every superstep still checkpointed


def test_repeated_step_invocation_leaves_one_head_checkpoint(strict_runtime):
    """At-least-once delivery: the same Step event delivered several times at once never forks."""
    ctx = strict_runtime.ctx
    thread_id = str(uuid.uuid4())
    new_thread(ctx, thread_id, {})
    # Queue and admit a run by hand (lease + running), without ringing dispatch or starting an
    # execution: only our invocations move it.
    assistant = ctx.assistants.get(system_assistant_id("chain"))
    run = base_run(thread_id, assistant, {"input": {"items": []}, "stream_mode": ["values"]})
    run["run_id"] = new_run_id()
    entry = queue_entry(run["run_id"], int(time.time() * 1000))
    ctx.queue.insert(run, entry=entry, tail=None, reject=False)
    assert ctx.queue.admit(thread_id, run["run_id"], entry, task_token=None) == "admitted"
    lam = strict_runtime.aws.client("lambda")
    event = json.dumps({"run_id": run["run_id"], "thread_id": thread_id}).encode()

    def invoke(_: int) -> str:
        out = lam.invoke(FunctionName="StepFunction", Payload=event)
        assert "FunctionError" not in out, out["Payload"].read()
        return json.loads(out["Payload"].read())["status"]

    statuses: list[str] = []
    with ThreadPoolExecutor(4) as pool:
        for _ in range(8):
            statuses += pool.map(invoke, range(4))  # 4 identical deliveries at once
            if "done" in statuses:
                break
    assert "done" in statuses
    checkpoints = list(ctx.checkpointer.list({"configurable": {"thread_id": thread_id}}))
    parents = [c.parent_config["configurable"]["checkpoint_id"] for c in checkpoints if c.parent_config]
    assert len(parents) == len(set(parents)), "a checkpoint has two children: the thread forked"
    assert len(checkpoints) == 5  # exactly one checkpoint per superstep
    assert ctx.checkpointer.head(thread_id) == checkpoints[0].config["configurable"]["checkpoint_id"]
    assert checkpoints[0].checkpoint["channel_values"]["items"] == ["a", "b", "c"]
