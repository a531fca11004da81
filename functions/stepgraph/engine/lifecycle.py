"""A run's life outside its supersteps: creation, admission, parking and finishing.

The SQS FIFO queue (group = thread) only rings a doorbell for a thread; what decides which run
executes is the thread lease, a conditional write on the thread item. Dispatch and finish both
call `admit_next_run`, which starts the oldest pending run of the thread if nobody holds it.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from botocore.exceptions import ClientError

from stepgraph.engine.context import Context
from stepgraph.engine.interrupts import deadline_action
from stepgraph.engine.state import get_thread_state
from stepgraph.storage.resources import INFLIGHT, Conflict, now_iso

logger = logging.getLogger(__name__)


def new_run_id() -> str:
    """UUIDv7: time-ordered, so the runs table's sort key is creation order."""
    import os
    import time

    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def ring_doorbell(ctx: Context, thread_id: str, dedup: str) -> None:
    """Ask dispatch to look at this thread's pending runs (one FIFO group per thread)."""
    ctx.clients.sqs.send_message(
        QueueUrl=ctx.settings.run_queue_url,
        MessageBody=json.dumps({"thread_id": thread_id}),
        MessageGroupId=thread_id,
        MessageDeduplicationId=dedup,
    )


def insert_run(ctx: Context, run: dict[str, Any]) -> None:
    """Persist a pending run, mark the thread busy and ring the thread's doorbell."""
    ctx.runs.create(run)
    ctx.threads.set_status(run["thread_id"], "busy")
    ring_doorbell(ctx, run["thread_id"], dedup=run["run_id"])


def admit_next_run(ctx: Context, thread_id: str) -> str | None:
    """Start the oldest pending run of the thread if the thread is free. Safe to run twice."""
    for _ in range(10):
        thread = ctx.threads.get(thread_id)
        if thread is None:
            return None
        holder = thread.get("active_run_id")
        if holder:
            held = ctx.runs.get(thread_id, holder)
            if held is not None and held["status"] == "running":
                return None  # busy: its finish rings the doorbell again
            if held is not None and held["status"] == "pending":
                candidate = holder  # a dispatch crashed between lease and start: finish the job
            else:
                # The holder ended without releasing (crash inside finish): free the thread.
                ctx.threads.release_lease(thread_id, holder, status="idle")
                continue
        else:
            candidate = ctx.runs.oldest_pending(thread_id)
        if candidate is None:
            return None
        old_token = thread.get("task_token")
        if not ctx.threads.acquire_lease(thread_id, candidate):
            return None
        try:
            run = ctx.runs.transition(thread_id, candidate, to="running", expected=("pending",))
        except Conflict:
            ctx.threads.release_lease(thread_id, candidate, status="idle")
            continue
        _start(ctx, run, old_token)
        return candidate
    return None


def _start(ctx: Context, run: dict[str, Any], parked_token: str | None) -> None:
    sfn = ctx.clients.sfn
    if parked_token:
        if continues_thread(run.get("kwargs", {})):
            # A resume continues the parked execution itself; only the new run's id crosses.
            try:
                sfn.send_task_success(taskToken=parked_token, output=json.dumps({"run_id": run["run_id"]}))
                return
            except ClientError as exc:
                logger.info("parked execution gone (%s); starting a new one", exc.response["Error"]["Code"])
        else:
            # New input abandons the parked execution through its token.
            try:
                sfn.send_task_failure(taskToken=parked_token, error="Abandoned", cause="new input on the thread")
            except ClientError:
                pass
    try:
        sfn.start_execution(
            stateMachineArn=ctx.settings.state_machine_arn,
            name=run["run_id"],
            input=json.dumps(
                {
                    "run_id": run["run_id"],
                    "thread_id": run["thread_id"],
                    "step": {"status": "pending", "park_timeout_seconds": 0},
                    "error": None,
                }
            ),
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise


def continues_thread(kwargs: dict[str, Any]) -> bool:
    """A Command, or no input at all (continue after interrupt_before/after), resumes the
    parked execution; new input, or a replay from a checkpoint, starts a fresh one."""
    if kwargs.get("command"):
        return True
    return "input" not in kwargs and not kwargs.get("checkpoint_id") and not kwargs.get("checkpoint")


def _settled_status(ctx: Context, run: dict[str, Any], run_status: str, outcome: str | None = None) -> str:
    """The thread's status once this run no longer holds it (the peer's rules)."""
    if run_status == "error":
        return "error"
    if outcome == "done":  # the step saw no next task: nothing left to interrupt
        return "idle"
    return "interrupted" if get_thread_state(ctx, run["thread_id"], run["graph_id"]).next else "idle"


def _release_thread(ctx: Context, run: dict[str, Any], settled: str, *, park_token: str | None = None) -> bool:
    """Free the run's lease; True if runs wait for the thread (ring its doorbell).

    Checking for waiting runs again after the release closes the race with a run inserted
    meanwhile: either its own doorbell finds the lease free, or this check finds it.
    """
    thread_id, run_id = run["thread_id"], run["run_id"]
    waiting = ctx.runs.oldest_pending(thread_id) is not None
    ctx.threads.release_lease(thread_id, run_id, status="busy" if waiting else settled, park_token=park_token)
    return waiting or ctx.runs.oldest_pending(thread_id) is not None


def park_run(ctx: Context, run_id: str, thread_id: str, task_token: str) -> None:
    """The run stopped on an interrupt: it succeeds (as the peer reports it), the thread waits."""
    try:
        run = ctx.runs.transition(thread_id, run_id, to="success", expected=("running",))
    except Conflict:
        logger.info("run %s ended before parking (cancelled?)", run_id)
        return
    waiting = _release_thread(ctx, run, "interrupted", park_token=task_token)
    ctx.events.end(run_id, {"status": "success"})
    if waiting:
        ring_doorbell(ctx, thread_id, dedup=f"park:{run_id}")


def finish_run(ctx: Context, run_id: str, thread_id: str, outcome: str, error: Any = None) -> dict[str, Any]:
    """Final status (conditional: never overwrites a cancel), free the lease, admit the next run."""
    if outcome == "expired":
        return {"resume_run_id": expire_parked_run(ctx, run_id, thread_id)}
    failure = None
    if error:
        # The step crashed past its retries: the error never reached the event log.
        failure = {"error": str(error.get("Error", "StepFailed")), "message": _cause(error)}
    status = "error" if (failure or outcome == "error") else "success"
    try:
        run = ctx.runs.transition(
            thread_id, run_id, to=status, expected=("running",), patch={"error": failure} if failure else None
        )
    except Conflict:  # cancelled, rolled back or finished already: the first word stands
        run = ctx.runs.get(thread_id, run_id)
        if run is None:
            return {"resume_run_id": None}
        status = run["status"]
    else:
        if failure:
            ctx.events.append(run_id, "error", failure)
    waiting = _release_thread(ctx, run, _settled_status(ctx, run, status, outcome))
    ctx.events.end(run_id, {"status": status})
    if waiting:
        ring_doorbell(ctx, thread_id, dedup=f"finish:{run_id}")
    return {"resume_run_id": None}


def _cause(error: dict[str, Any]) -> str:
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
        return str(parsed.get("errorMessage") or cause)
    except (ValueError, AttributeError):
        return str(cause)


def run_is_inflight(run: dict[str, Any]) -> bool:
    return run.get("status") in INFLIGHT


def base_run(thread_id: str, assistant: dict[str, Any], kwargs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    now = now_iso()
    return {
        "run_id": new_run_id(),
        "thread_id": thread_id,
        "assistant_id": assistant["assistant_id"],
        "graph_id": assistant["graph_id"],
        "created_at": now,
        "updated_at": now,
        "status": "pending",
        "metadata": extra.pop("metadata", None) or {},
        "kwargs": kwargs,
        "multitask_strategy": extra.pop("multitask_strategy", None) or "enqueue",
        "langsmith_session_name": None,
        **extra,
    }


def execution_arn(ctx: Context, run_id: str) -> str:
    return ctx.settings.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"


def cancel_run(ctx: Context, run: dict[str, Any], action: str = "interrupt") -> dict[str, Any] | None:
    """Cancel a pending or running run. The status write is conditional, then the lease goes:
    from that moment the run's fenced checkpoint writes fail, so it can never write again."""
    thread_id, run_id = run["thread_id"], run["run_id"]
    try:
        run = ctx.runs.transition(thread_id, run_id, to="interrupted", expected=INFLIGHT)
    except Conflict:
        return ctx.runs.get(thread_id, run_id)
    # Release first: from here the run's fenced checkpoint writes fail, so a rollback below
    # cannot be followed by a late checkpoint of the cancelled run.
    waiting = _release_thread(ctx, run, _settled_status(ctx, run, "interrupted"))
    try:
        ctx.clients.sfn.stop_execution(executionArn=execution_arn(ctx, run_id), error="Cancelled")
    except Exception:  # noqa: BLE001 - never started, already over, parked, or (moto) not yet running
        logger.debug("stop_execution for %s did nothing", run_id, exc_info=True)
    ctx.events.end(run_id, {"status": "interrupted"})
    if action == "rollback":
        ctx.checkpointer.delete_for_runs([run_id])
        ctx.runs.delete(thread_id, run_id)
        ctx.events.delete_run(run_id)
        run = None
    if waiting:  # after a rollback's deletes: the next run must not see the rolled-back state
        ring_doorbell(ctx, thread_id, dedup=f"cancel:{run_id}")
    return run


def expire_parked_run(ctx: Context, run_id: str, thread_id: str) -> str | None:
    """The deadline for human input passed while the run was parked (Park timed out).

    Action "resume": a new run resumes the thread with the configured value and continues
    this same execution (its id goes back to the state machine). Action "end": the parked run
    ends with status `timeout`; the thread keeps its interrupt, and a later resume starts a
    fresh execution. Nothing happens if someone moved first (resume, new input, delete).
    Safe to run twice: a retry finds the resume run it already leased.
    """
    parked = ctx.runs.get(thread_id, run_id)
    thread = ctx.threads.get(thread_id)
    if parked is None or thread is None:
        return None
    holder = thread.get("active_run_id")
    if holder and holder != run_id:
        held = ctx.runs.get(thread_id, holder)
        if held and (held.get("metadata") or {}).get("resumed_from") == run_id and held["status"] == "running":
            return holder  # this function ran before and its reply was lost
    if thread.get("parked_run_id") != run_id:
        return None
    action = deadline_action(parked)
    if action["action"] != "resume":
        ctx.threads.forget_park(thread_id, run_id)
        try:
            ctx.runs.transition(thread_id, run_id, to="timeout", expected=("success",))
        except Conflict:
            pass
        return None
    kwargs = {
        k: v
        for k, v in (parked.get("kwargs") or {}).items()
        if k in ("config", "context", "stream_mode", "stream_subgraphs", "stream_resumable", "durability",
                 "interrupt_before", "interrupt_after", "interrupt_deadline_seconds", "on_interrupt_deadline")
    }
    kwargs["command"] = {"resume": action["value"]}
    resume = base_run(
        thread_id,
        {"assistant_id": parked["assistant_id"], "graph_id": parked["graph_id"]},
        kwargs,
        metadata={**(parked.get("metadata") or {}), "resumed_from": run_id, "resumed_by": "interrupt_deadline"},
        multitask_strategy=parked.get("multitask_strategy"),
        **({"assistant_config": parked["assistant_config"]} if "assistant_config" in parked else {}),
    )
    resume["status"] = "running"
    # Lease first: a crash before the run exists leaves a lease on a missing run, which
    # admission frees; the other order could leave a running run nobody executes.
    if not ctx.threads.take_parked(thread_id, run_id, resume["run_id"]):
        return None
    ctx.runs.create(resume)
    return resume["run_id"]
