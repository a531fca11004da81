"""Durability under faults, on the split local runtime: moto (with Step Functions and the Lambda
hook) in one process, the Lambda handlers in a worker process that the tests kill.

Each test prints its counts: runs started (executions), finished, lost (must be 0) and
duplicate supersteps (must be 0), and asserts them.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cluster import Cluster
from stepgraph.api.runs import create_run
from stepgraph.api.schemas import RunCreate
from stepgraph.api.threads import new_thread
from stepgraph.engine import cancel_run
from stepgraph.storage.events import END

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", params=["strict", "batched"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    # Strict commits each superstep on its own; batched commits several in one transaction.
    c = Cluster(step_mode=request.param).start()
    try:
        yield c
    finally:
        c.stop()


# ---------------------------------------------------------------- helpers
def start(c: Cluster, graph: str, payload: dict[str, Any], thread_id: str | None = None) -> dict[str, Any]:
    if thread_id is None:
        thread_id = str(uuid.uuid4())
        new_thread(c.ctx, thread_id, {})
    return create_run(c.ctx, thread_id, RunCreate(assistant_id=graph, input=payload))


def wait_ended(c: Cluster, runs: list[dict[str, Any]], timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = {
            r["run_id"]: (c.ctx.runs.get(r["thread_id"], r["run_id"]) or {}).get("status", "deleted") for r in runs
        }
        if all(s not in ("pending", "running") for s in statuses.values()) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.05)


def history(c: Cluster, thread_id: str) -> list[Any]:
    return list(c.ctx.checkpointer.list({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}))


def duplicate_supersteps(c: Cluster, thread_id: str) -> int:
    """Checkpoints beyond one per superstep: a repeated step number, or two children of one parent."""
    tuples = history(c, thread_id)
    steps = [t.metadata["step"] for t in tuples]
    parents = [t.parent_config["configurable"]["checkpoint_id"] for t in tuples if t.parent_config]
    return (len(steps) - len(set(steps))) + (len(parents) - len(set(parents)))


def executions(c: Cluster, run_ids: set[str]) -> dict[str, int]:
    """How many executions each run has (the state machine's, named after the run)."""
    sfn = c.client("stepfunctions")
    names: dict[str, int] = {}
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=c.ctx.settings.state_machine_arn):
        for e in page["executions"]:
            if e["name"] in run_ids:
                names[e["name"]] = names.get(e["name"], 0) + 1
    return names


def report(
    record: Any, name: str, c: Cluster, runs: list[dict[str, Any]], statuses: dict[str, str], **extra: Any
) -> dict[str, int]:
    started = sum(executions(c, {r["run_id"] for r in runs}).values())
    finished = sum(s == "success" for s in statuses.values())
    counts = {
        "runs": len(runs),
        "started": started,
        "finished": finished,
        "lost": len(runs) - finished,
        "duplicate_supersteps": sum(duplicate_supersteps(c, t) for t in {r["thread_id"] for r in runs}),
        **extra,
    }
    record(f"{name} [{c.step_mode}]", counts)
    return counts


def sqs_record(thread_id: str) -> dict[str, Any]:
    """A doorbell as the SQS event source would deliver it to dispatch."""
    now = str(int(time.time() * 1000))
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": uuid.uuid4().hex,
        "body": json.dumps({"thread_id": thread_id}),
        "attributes": {
            "ApproximateReceiveCount": "2",
            "SentTimestamp": now,
            "SenderId": "test",
            "ApproximateFirstReceiveTimestamp": now,
            "MessageGroupId": thread_id,
            "MessageDeduplicationId": uuid.uuid4().hex,
            "SequenceNumber": "1",
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stepgraph-local-runs.fifo",
        "awsRegion": "us-east-1",
    }


# ---------------------------------------------------------------- the worker dies
def test_killed_worker_mid_superstep_loses_nothing(cluster, record_counts):
    steps = 12
    runs = [start(cluster, "counter", {"steps": steps, "pause": 0.15}) for _ in range(4)]
    # Every run admitted and inside its supersteps (a node sleeping) before the kill.
    deadline = time.monotonic() + 30
    while min(len(history(cluster, r["thread_id"])) for r in runs) < 3:
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.02)
    cluster.kill_worker()
    cluster.start_worker()  # a new "sandbox": the failed invocations are retried into it
    statuses = wait_ended(cluster, runs)
    crashed = 0
    sfn = cluster.client("stepfunctions")
    for r in runs:
        events = sfn.get_execution_history(executionArn=cluster.ctx.executions.arn(r["run_id"]), maxResults=1000)[
            "events"
        ]
        crashed += sum(
            e["type"] == "TaskFailed" and e["taskFailedEventDetails"].get("error") == "Runtime.ExitError"
            for e in events
        )
    counts = report(record_counts, "killed worker", cluster, runs, statuses, invocations_crashed=crashed)
    assert counts["started"] == counts["finished"] == len(runs) and counts["lost"] == 0
    assert counts["duplicate_supersteps"] == 0
    assert crashed >= 1, "the kill hit no invocation"
    for r in runs:
        tuples = history(cluster, r["thread_id"])
        assert sorted(t.metadata["step"] for t in tuples) == list(range(-1, steps + 1))
        assert tuples[0].checkpoint["channel_values"]["count"] == steps  # the correct final state


# ---------------------------------------------------------------- duplicate step deliveries
def test_duplicate_step_invocations_write_one_checkpoint_per_superstep(cluster, record_counts):
    steps = 8
    run = start(cluster, "counter", {"steps": steps, "pause": 0.05})
    lam = cluster.client("lambda")
    event = json.dumps({"run_id": run["run_id"], "thread_id": run["thread_id"]}).encode()
    done = threading.Event()
    invoked = [0]

    def duplicate() -> None:
        while not done.is_set():
            out = lam.invoke(FunctionName="StepFunction", Payload=event)  # via the Lambda API
            assert "FunctionError" not in out, out["Payload"].read()
            invoked[0] += 1

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(duplicate) for _ in range(3)]
        statuses = wait_ended(cluster, [run])
        done.set()
        for f in futures:
            f.result()
    counts = report(
        record_counts, "duplicate step invocations", cluster, [run], statuses, duplicate_invocations=invoked[0]
    )
    assert counts["finished"] == 1 and counts["lost"] == 0 and counts["duplicate_supersteps"] == 0
    assert invoked[0] >= steps
    tuples = history(cluster, run["thread_id"])
    assert sorted(t.metadata["step"] for t in tuples) == list(range(-1, steps + 1))
    assert tuples[0].checkpoint["channel_values"]["count"] == steps


# ---------------------------------------------------------------- duplicate / reordered doorbells
def test_duplicate_and_reordered_queue_messages_run_nothing_twice(cluster, record_counts):
    threads = [str(uuid.uuid4()) for _ in range(4)]
    for t in threads:
        new_thread(cluster.ctx, t, {})
    lam = cluster.client("lambda")
    rng = random.Random(7)

    def stray_doorbells(n: int) -> None:
        # Early, late and duplicated doorbells through SQS, and batches delivered to dispatch
        # directly, twice and out of order (at-least-once delivery to the Lambda).
        for _ in range(n):
            cluster.ctx.doorbell.ring(rng.choice(threads), dedup=uuid.uuid4().hex)
            batch = [sqs_record(rng.choice(threads)) for _ in range(rng.randint(1, 6))]
            payload = json.dumps({"Records": batch}).encode()
            for _ in range(2):
                lam.invoke(FunctionName="DispatchFunction", Payload=payload)

    stray_doorbells(4)  # before any run exists
    order = [t for t in threads for _ in range(4)]
    rng.shuffle(order)
    with ThreadPoolExecutor(2) as pool:
        noise = pool.submit(stray_doorbells, 12)
        runs = [start(cluster, "nap", {"items": [f"r{i}"], "pause": 0}, thread_id=t) for i, t in enumerate(order)]
        noise.result()
    statuses = wait_ended(cluster, runs)
    stray_doorbells(6)  # after they ended
    time.sleep(0.5)
    per_run = executions(cluster, {r["run_id"] for r in runs})
    counts = report(
        record_counts,
        "duplicated and reordered doorbells",
        cluster,
        runs,
        statuses,
        executed_twice=sum(n > 1 for n in per_run.values()),
    )
    assert counts["started"] == counts["finished"] == len(runs) and counts["lost"] == 0
    assert counts["executed_twice"] == 0 and counts["duplicate_supersteps"] == 0
    for t in threads:
        mine = sorted((r for r in runs if r["thread_id"] == t), key=lambda r: r["run_id"])
        items = history(cluster, t)[0].checkpoint["channel_values"]["items"]
        # Each run's input exactly once, each followed by its one nap, in creation order.
        assert items == [x for r in mine for x in (r["kwargs"]["input"]["items"][0], "slept")]


# ---------------------------------------------------------------- timeouts and cancels
def _until_marker(path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text() == text):
        assert time.monotonic() < deadline, f"{path} never read {text!r}"
        time.sleep(0.02)


def test_step_timing_out_is_retried_from_the_last_checkpoint(cluster, tmp_path, record_counts):
    lam = cluster.client("lambda")
    configured = lam.get_function_configuration(FunctionName="StepFunction")["Timeout"]
    lam.update_function_configuration(FunctionName="StepFunction", Timeout=2)
    marker = tmp_path / "stall"
    try:
        run = start(cluster, "stall", {"steps": 5, "stall_at": 2, "pause": 3.5, "marker": str(marker)})
        statuses = wait_ended(cluster, [run])
        # The timed-out invocation was not stopped: it wakes up and tries to commit its
        # superstep after the retry did. Its write must find the head moved.
        _until_marker(marker, "returned")
        time.sleep(0.5)
    finally:
        lam.update_function_configuration(FunctionName="StepFunction", Timeout=configured)
    sfn = cluster.client("stepfunctions")
    events = sfn.get_execution_history(executionArn=cluster.ctx.executions.arn(run["run_id"]), maxResults=1000)[
        "events"
    ]
    timed_out = sum(
        e["type"] == "TaskFailed" and e["taskFailedEventDetails"].get("error") == "Sandbox.Timedout" for e in events
    )
    counts = report(record_counts, "step timed out", cluster, [run], statuses, invocations_timed_out=timed_out)
    assert timed_out == 1
    assert counts["finished"] == 1 and counts["lost"] == 0 and counts["duplicate_supersteps"] == 0
    tuples = history(cluster, run["thread_id"])
    assert sorted(t.metadata["step"] for t in tuples) == list(range(-1, 6))
    assert tuples[0].checkpoint["channel_values"]["count"] == 5


def test_cancelled_run_writes_nothing_after_and_a_late_finish_keeps_the_cancel(cluster, tmp_path, record_counts):
    ctx = cluster.ctx
    marker = tmp_path / "stall"
    run = start(cluster, "stall", {"steps": 5, "stall_at": 2, "pause": 1.0, "marker": str(marker)})
    thread_id, run_id = run["thread_id"], run["run_id"]
    _until_marker(marker, "stalled")  # superstep 3 is in flight, its node asleep
    deadline = time.monotonic() + 5
    while len(history(cluster, thread_id)) < 4:  # batched: the last commit may linger a moment
        assert time.monotonic() < deadline
        time.sleep(0.01)
    cancel_run(ctx, ctx.runs.get(thread_id, run_id), action="interrupt")
    at_cancel = [t.config["configurable"]["checkpoint_id"] for t in history(cluster, thread_id)]
    _until_marker(marker, "returned")  # the node returned: its superstep tries to commit
    time.sleep(0.5)
    lam = cluster.client("lambda")
    ids = {"run_id": run_id, "thread_id": thread_id}
    late_step = json.loads(lam.invoke(FunctionName="StepFunction", Payload=json.dumps(ids).encode())["Payload"].read())
    late_finishes = [
        lam.invoke(FunctionName="FinishFunction", Payload=json.dumps({**ids, **extra}).encode())
        for extra in (
            {"outcome": "done"},
            {"outcome": "error"},
            {"error": {"Error": "States.TaskFailed", "Cause": "late"}},
        )
    ]
    assert all("FunctionError" not in f for f in late_finishes)
    after = [t.config["configurable"]["checkpoint_id"] for t in history(cluster, thread_id)]
    record = ctx.runs.get(thread_id, run_id)
    record_counts(
        f"cancel fence [{cluster.step_mode}]",
        {
            "checkpoints_at_cancel": len(at_cancel),
            "written_after": len(after) - len(at_cancel),
            "status": record["status"],
        },
    )
    assert after == at_cancel  # neither the in-flight superstep nor a late step wrote
    assert late_step["status"] == "done"
    assert record["status"] == "interrupted" and not record.get("error")
    assert ctx.threads.get(thread_id)["status"] == "interrupted"  # stopped with work left, as the peer


# ---------------------------------------------------------------- throttling
def test_throttled_checkpoint_writes_still_finish(cluster, record_counts):
    cluster.throttle({"operation": "TransactWriteItems", "table": "CheckpointsTable", "count": 3, "every": 2})
    try:
        # Nodes slower than the commit linger: batched mode also commits each superstep alone.
        run = start(cluster, "counter", {"steps": 6, "pause": 0.05})
        statuses = wait_ended(cluster, [run])
    finally:
        throttled = cluster.throttled()
        cluster.throttle(None)
    counts = report(record_counts, "throttled checkpoint writes", cluster, [run], statuses, throttled=throttled)
    assert throttled == 3
    assert counts["finished"] == 1 and counts["lost"] == 0 and counts["duplicate_supersteps"] == 0
    assert history(cluster, run["thread_id"])[0].checkpoint["channel_values"]["count"] == 6


# ---------------------------------------------------------------- retries run out
def test_step_failing_past_its_retries_ends_the_run_in_error(cluster, record_counts):
    run = start(cluster, "storage_fault", {"items": []})
    statuses = wait_ended(cluster, [run], timeout=40)
    assert statuses[run["run_id"]] == "error"
    record = cluster.ctx.runs.get(run["thread_id"], run["run_id"])
    assert record["error"]["error"] == "ClientError" and "injected" in record["error"]["message"]
    deadline = time.monotonic() + 10
    while (events := cluster.ctx.events.read(run["run_id"]))[-1:] == [] or events[-1].event != END:
        assert time.monotonic() < deadline  # finish writes the error event, then ends the log
        time.sleep(0.02)
    assert [e.data for e in events if e.event == "error"] == [record["error"]]
    sfn = cluster.client("stepfunctions")
    history_ = sfn.get_execution_history(executionArn=cluster.ctx.executions.arn(run["run_id"]), maxResults=1000)
    failed = sum(e["type"] == "TaskFailed" for e in history_["events"])
    assert failed == 4  # the first attempt and the state machine's 3 retries
    assert cluster.ctx.threads.get(run["thread_id"])["status"] == "error"
    record_counts(f"retries exhausted [{cluster.step_mode}]", {"step_attempts": failed, "status": "error"})


# ---------------------------------------------------------------- recovery by dispatch
def test_dispatch_finishes_work_a_crash_left_behind(cluster):
    ctx = cluster.ctx
    # 1. A canceller died mid-rollback: the thread is held by the rollback marker, the run's
    #    checkpoints are still there. The next doorbell finishes the rollback, then admits.
    first = start(cluster, "nap", {"items": ["doomed"], "pause": 3})
    thread_id = first["thread_id"]
    deadline = time.monotonic() + 20
    while [t.metadata["step"] for t in history(cluster, thread_id)][:1] != [0]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert ctx.queue.stop(thread_id, first["run_id"], status="busy", hold="rollback:" + first["run_id"])
    second = start(cluster, "nap", {"items": ["kept"], "pause": 0}, thread_id=thread_id)
    statuses = wait_ended(cluster, [second])
    assert statuses[second["run_id"]] == "success"
    assert ctx.runs.get(thread_id, first["run_id"]) is None
    assert history(cluster, thread_id)[0].checkpoint["channel_values"]["items"] == ["kept", "slept"]
    assert {t.metadata["run_id"] for t in history(cluster, thread_id)} == {second["run_id"]}

    # 2. A dispatch died between admitting a run and starting its execution: a redelivered
    #    doorbell starts it.
    other = str(uuid.uuid4())
    new_thread(ctx, other, {})
    state = ctx.queue.state(other)
    from stepgraph.engine import base_run
    from stepgraph.engine.ids import new_run_id
    from stepgraph.storage.queue import queue_entry

    run = base_run(other, ctx.assistants.get(first["assistant_id"]), {"input": {"items": ["late"], "pause": 0}})
    run["run_id"] = new_run_id(after=state.tail)
    entry = queue_entry(run["run_id"], int(time.time() * 1000))
    ctx.queue.insert(run, entry=entry, tail=state.tail, reject=False)  # queued, no doorbell rung
    assert ctx.queue.admit(other, run["run_id"], entry, task_token=None) == "admitted"  # ... and "crash"
    ctx.doorbell.ring(other, dedup=uuid.uuid4().hex)  # the redelivery
    assert wait_ended(cluster, [run])[run["run_id"]] == "success"


# ---------------------------------------------------------------- parked runs
def test_cancelling_a_parked_run_goes_through_its_task_token(cluster):
    ctx = cluster.ctx
    run = start(cluster, "ask", {"items": []})
    deadline = time.monotonic() + 20
    while not (ctx.threads.get(run["thread_id"]) or {}).get("task_token"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    sfn = cluster.client("stepfunctions")
    arn = ctx.executions.arn(run["run_id"])
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"  # parked on its token
    cancel_run(ctx, ctx.runs.get(run["thread_id"], run["run_id"]))
    deadline = time.monotonic() + 10
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the parked execution was not released"
        time.sleep(0.05)
    states = [
        e["stateEnteredEventDetails"]["name"]
        for e in sfn.get_execution_history(executionArn=arn)["events"]
        if "stateEnteredEventDetails" in e
    ]
    assert states[-1] == "Abandoned"
    assert "task_token" not in ctx.threads.get(run["thread_id"])
