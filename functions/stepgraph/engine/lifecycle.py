"""A run's life outside its supersteps: creation, admission, parking and finishing.

The SQS FIFO queue (group = thread) only rings a doorbell for a thread; what decides which run
executes is the thread lease, a conditional write on the thread item. Dispatch and finish both
call `admit_next_run`, which starts the oldest pending run of the thread if nobody holds it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from stepgraph.engine.context import Context
from stepgraph.engine.interrupts import deadline_action
from stepgraph.engine.state import get_thread_state
from stepgraph.storage import Conflict, ThreadMissing, entry_due_ms, entry_run_id, now_iso, queue_entry

logger = logging.getLogger(__name__)


_id_lock = threading.Lock()
_last_id = (0, 0)  # (ms, counter) of the last run id made here


def _id_parts(run_id: str) -> tuple[int, int]:
    value = uuid.UUID(run_id).int
    return value >> 80, (value >> 64) & 0xFFF


def new_run_id(after: str | None = None) -> str:
    """UUIDv7 whose 12-bit rand_a field is a counter (RFC 9562 §6.2, method 1): ids made here,
    and an id made `after` another, sort strictly after it, so key order is creation order."""
    global _last_id
    with _id_lock:
        floor = max(_last_id, _id_parts(after)) if after else _last_id
        ms = time.time_ns() // 1_000_000
        if ms > floor[0]:
            counter = random.getrandbits(11)  # half the range left for ids in the same ms
        else:
            ms, counter = floor[0], floor[1] + 1
            if counter > 0xFFF:
                ms, counter = ms + 1, 0
        _last_id = (ms, counter)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62
    value |= int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def ring_doorbell(ctx: Context, thread_id: str, dedup: str) -> None:
    """Ask dispatch to look at this thread's pending runs (one FIFO group per thread)."""
    ctx.clients.sqs.send_message(
        QueueUrl=ctx.settings.run_queue_url,
        MessageBody=json.dumps({"thread_id": thread_id}),
        MessageGroupId=thread_id,
        MessageDeduplicationId=dedup,
    )


# Inserts on one thread are ordered by a conditional write on the thread's tail; within this
# process they queue on a lock instead of retrying each other's writes.
_insert_locks = [threading.Lock() for _ in range(64)]


def insert_run(ctx: Context, run: dict[str, Any], *, reject: bool = False, after_seconds: float = 0) -> list[str]:
    """Queue a pending run behind the thread's runs and ring the thread's doorbell.

    The insert is one transaction conditional on the thread's tail (the run inserted last), so
    a thread's inserts have one order and run ids follow it: "oldest pending first" is creation
    order, and the inflight runs returned (pending ones in queue order, then the holder) are
    exactly the runs the new one was created behind. `reject` adds the condition that the thread
    holds and queues nothing, decided by that same write (raises Conflict). `after_seconds`
    queues the run due later (the peer's created_at = now + after_seconds). The run's id and
    timestamps are assigned here. Raises ThreadMissing if the thread does not exist.
    """
    thread_id = run["thread_id"]
    with _insert_locks[hash(thread_id) % len(_insert_locks)]:
        for attempt in range(100):
            state = ctx.queue.state(thread_id)
            if state is None:
                raise ThreadMissing(thread_id)
            if reject and (state.holder or state.pending):
                raise Conflict(f"thread {thread_id} is busy")
            run["run_id"] = new_run_id(after=state.tail)
            due_ms = _id_parts(run["run_id"])[0] + int(after_seconds * 1000)
            run["created_at"] = run["updated_at"] = (
                datetime.fromtimestamp(due_ms / 1000, UTC).isoformat() if after_seconds else now_iso()
            )
            try:
                ctx.queue.insert(run, entry=queue_entry(run["run_id"], due_ms), tail=state.tail, reject=reject)
            except Conflict:
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))  # another API instance won
                continue
            break
        else:
            raise RuntimeError(f"could not queue a run on thread {thread_id}: too much contention")
    ring_doorbell(ctx, thread_id, dedup=run["run_id"])
    inflight = [entry_run_id(e) for e in state.pending]
    if state.holder and not state.holder.startswith(ROLLBACK):
        inflight.append(state.holder)
    return inflight


def cancel_inflight(ctx: Context, thread_id: str, run_ids: list[str], action: str) -> None:
    """Double-texting with interrupt / rollback: cancel the runs a new run was created behind.

    Pending runs go first, the holder last: when the lease frees, the new run is the oldest
    pending run left, so nothing older is admitted just to be cancelled.
    """
    for run_id in run_ids:
        cancel_run(ctx, {"thread_id": thread_id, "run_id": run_id}, action)


# A thread held by this name is being rolled back: nothing may start until its writes are gone.
ROLLBACK = "rollback:"
# A due run may wait this long inside dispatch instead of on a timer.
_DUE_SLACK_MS = 50


def admit_next_run(ctx: Context, thread_id: str) -> str | None:
    """Start the thread's first due pending run if nobody holds the thread. Safe to run twice,
    concurrently, and on duplicated or reordered doorbells: the lease and the run's move to
    running are one conditional transaction, and the execution is named after the run."""
    for _ in range(20):
        state = ctx.queue.state(thread_id)
        if state is None:
            return None
        if state.holder:
            if not _recover_holder(ctx, thread_id, state.holder):
                return None  # busy: its finish or cancel rings the doorbell again
            continue
        if not state.pending:
            return None
        entry = state.pending[0]
        run_id = entry_run_id(entry)
        wait_ms = entry_due_ms(entry) - time.time_ns() // 1_000_000
        if wait_ms > _DUE_SLACK_MS:
            _ring_when_due(ctx, thread_id, run_id, wait_ms)
            return None
        if wait_ms > 0:
            time.sleep(wait_ms / 1000)
        outcome = ctx.queue.admit(thread_id, run_id, entry, task_token=state.task_token)
        if outcome == "run":  # an entry whose run is gone or not pending: drop it
            ctx.queue.drop(thread_id, entry)
            continue
        if outcome != "admitted":
            continue  # the thread changed under us: look again
        run = ctx.runs.get(thread_id, run_id)
        if run is None:  # deleted right after admission (thread deleted): nothing to start
            return None
        _start(ctx, run, state.task_token)
        return run_id
    return None


def _recover_holder(ctx: Context, thread_id: str, holder: str) -> bool:
    """True if the thread's holder turned out to be stale and was cleared (look again)."""
    if holder.startswith(ROLLBACK):
        # A rollback stopped between holding the thread and releasing it: finish its work.
        run_id = holder.removeprefix(ROLLBACK)
        _stop_execution(ctx, run_id)
        _complete_rollback(ctx, thread_id, run_id)
        return True
    held = ctx.runs.get(thread_id, holder)
    if held is not None and held["status"] == "running":
        _ensure_started(ctx, held)
        return False
    if held is not None and held["status"] == "pending":
        # Held while pending: an admission from before the transactional one. Finish the job.
        try:
            run = ctx.runs.transition(thread_id, holder, to="running", expected=("pending",))
        except Conflict:
            return True
        _start(ctx, run, None)
        return False
    if held is None:
        # A lease may be taken just before its run is written (a parked run's deadline resume):
        # only a holder still missing a moment later is a crash's leftover.
        time.sleep(0.2)
        if ctx.runs.get(thread_id, holder) is not None:
            return True
    elif _age_seconds(held) < _STALE_HOLDER_SECONDS:
        return False  # it just ended: its own finish / park releases the thread and rings
    graph_id = (held or {}).get("graph_id") or _thread_graph(ctx, thread_id)
    settled = _settled_thread_status(ctx, thread_id, graph_id, (held or {}).get("status", ""))
    ctx.threads.release_lease(thread_id, holder, status="busy" if _waiting(ctx, thread_id) else settled)
    return True


# An ended run still holding its thread this long after its last status change lost its
# finish (every retry of it): dispatch frees the thread.
_STALE_HOLDER_SECONDS = 60


def _age_seconds(run: dict[str, Any]) -> float:
    try:
        return time.time() - datetime.fromisoformat(run["updated_at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return float("inf")


def _thread_graph(ctx: Context, thread_id: str) -> str | None:
    thread = ctx.threads.get(thread_id) or {}
    graph_id = (thread.get("metadata") or {}).get("graph_id")
    return graph_id if graph_id in ctx.graphs.specs else None


def _settled_thread_status(ctx: Context, thread_id: str, graph_id: str | None, run_status: str) -> str:
    if not graph_id:
        return "error" if run_status == "error" else "idle"
    return _settled_status(ctx, {"thread_id": thread_id, "graph_id": graph_id}, run_status)


def _ensure_started(ctx: Context, run: dict[str, Any]) -> None:
    """A running run has an execution, unless the dispatch that admitted it died before
    StartExecution: a redelivered doorbell starts it (same name and input: idempotent)."""
    if continues_thread(run.get("kwargs", {})):
        return  # it continues a parked execution named after an earlier run
    try:
        ctx.clients.sfn.describe_execution(executionArn=execution_arn(ctx, run["run_id"]))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ExecutionDoesNotExist":
            raise
        logger.warning("run %s was admitted but never started; starting it", run["run_id"])
        _start(ctx, run, None)


def _ring_when_due(ctx: Context, thread_id: str, run_id: str, wait_ms: int) -> None:
    """SQS FIFO has no per-message delay: a small execution (Wait, then SendMessage) rings the
    thread's doorbell when the run is due. Armed by dispatch whenever the first pending run of
    a thread is not due yet; one per run (named after it), so arming again changes nothing."""
    try:
        ctx.clients.sfn.start_execution(
            stateMachineArn=ctx.settings.delay_state_machine_arn,
            name=f"after-{run_id}",
            input=json.dumps({"thread_id": thread_id, "run_id": run_id, "seconds": math.ceil(wait_ms / 1000)}),
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise


def _start(ctx: Context, run: dict[str, Any], parked_token: str | None) -> None:
    sfn = ctx.clients.sfn
    if parked_token:
        if continues_thread(run.get("kwargs", {})):
            # A resume continues the parked execution itself. The run id is what the state
            # machine uses; the command rides along for the execution history when small (the
            # step reads it from the run, never from the payload, and graph state never crosses).
            try:
                sfn.send_task_success(taskToken=parked_token, output=_resume_output(run))
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


_RESUME_OUTPUT_MAX_BYTES = 32_000  # far below Step Functions' 256 KB payload limit


def _resume_output(run: dict[str, Any]) -> str:
    output = {"run_id": run["run_id"]}
    command = (run.get("kwargs") or {}).get("command")
    if command:
        with_command = json.dumps({**output, "command": command}, default=str)
        if len(with_command.encode()) <= _RESUME_OUTPUT_MAX_BYTES:
            return with_command
    return json.dumps(output)


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
    # Usually nothing waits: one write frees the lease and settles the status if nothing is queued.
    if ctx.threads.release_lease(thread_id, run_id, status=settled, park_token=park_token, if_idle=True):
        return False
    waiting = _waiting(ctx, thread_id)
    ctx.threads.release_lease(thread_id, run_id, status="busy" if waiting else settled, park_token=park_token)
    return waiting or _waiting(ctx, thread_id)


def _waiting(ctx: Context, thread_id: str) -> bool:
    """Runs are queued on the thread (a consistent read of the thread item, not the index)."""
    state = ctx.queue.state(thread_id)
    return bool(state and state.pending)


def park_run(ctx: Context, run_id: str, thread_id: str, task_token: str) -> None:
    """The run stopped on an interrupt: it succeeds (as the peer reports it), the thread waits."""
    try:
        run = ctx.runs.transition(thread_id, run_id, to="success", expected=("running",))
    except Conflict:
        # Cancelled while the state machine entered Park: end the execution through its token,
        # or it would wait for its deadline (StopExecution cannot reach a token wait in moto).
        logger.info("run %s ended before parking (cancelled?); abandoning its execution", run_id)
        try:
            ctx.clients.sfn.send_task_failure(taskToken=task_token, error="Abandoned", cause="run cancelled")
        except ClientError:
            pass
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
    """Cancel a run, the peer's way: it ends `interrupted` (rollback: it is deleted with every
    checkpoint it wrote). Returns the run as it now is, None once deleted.

    A pending run leaves the queue in the same write that ends it. A running run loses the lease
    in the same write that ends it, so from then on its fenced checkpoint writes fail and a late
    finish cannot overwrite the cancel; a rollback keeps the thread held under a marker until
    the run's checkpoints are gone, so no other run can start from them. A parked run (its
    execution waits on a task token, beyond StopExecution's reach) is released through its token.
    """
    thread_id, run_id = run["thread_id"], run["run_id"]
    rollback = action == "rollback"
    for _ in range(10):
        current = ctx.runs.get(thread_id, run_id)
        if current is None:
            return None
        if current["status"] == "pending":
            state = ctx.queue.state(thread_id)
            entry = state.entry_of(run_id) if state else None
            if entry is not None:
                if not ctx.queue.withdraw(thread_id, run_id, entry):
                    continue  # admitted meanwhile
            else:  # a pending run that was never queued (written directly): just end it
                try:
                    ctx.runs.transition(thread_id, run_id, to="interrupted", expected=("pending",))
                except Conflict:
                    continue
            ctx.events.end(run_id, {"status": "interrupted"})
            if rollback:  # it never ran: nothing of it to undo but the record
                ctx.runs.delete(thread_id, run_id)
                ctx.events.delete_run(run_id)
                ctx.events.end(run_id, {"status": "interrupted"})
            if not _waiting(ctx, thread_id):
                ctx.queue.settle(thread_id, _settled_status(ctx, current, "interrupted"))
            elif state and not state.holder and state.pending[:1] == (entry,):
                # It was first in line on a free thread: the next one may be due now.
                ring_doorbell(ctx, thread_id, dedup=f"cancel:{run_id}")
            return None if rollback else {**current, "status": "interrupted"}
        if current["status"] == "running":
            waiting = _waiting(ctx, thread_id)
            status = "busy" if (waiting or rollback) else _settled_status(ctx, current, "interrupted")
            hold = ROLLBACK + run_id if rollback else None
            if not ctx.queue.stop(thread_id, run_id, status=status, hold=hold):
                state = ctx.queue.state(thread_id)
                if state is None or state.holder == run_id:
                    continue  # it finished meanwhile (or the thread is gone): look again
                # Running without the lease (a lease cleared by recovery): it cannot write anyway.
                try:
                    ctx.runs.transition(thread_id, run_id, to="interrupted", expected=("running",))
                except Conflict:
                    continue
                ctx.events.end(run_id, {"status": "interrupted"})
                if rollback:
                    ctx.checkpointer.delete_for_runs([run_id])
                    ctx.runs.delete(thread_id, run_id)
                    return None
                return {**current, "status": "interrupted"}
            _stop_execution(ctx, run_id)
            ctx.events.end(run_id, {"status": "interrupted"})
            if rollback:
                _complete_rollback(ctx, thread_id, run_id)  # releases the thread and rings
                return None
            if waiting or _waiting(ctx, thread_id):
                ring_doorbell(ctx, thread_id, dedup=f"cancel:{run_id}")
            return {**current, "status": "interrupted"}
        # Not inflight: if its execution is parked on a task token, release that.
        thread = ctx.threads.get(thread_id)
        if thread and thread.get("parked_run_id") == run_id and not thread.get("active_run_id"):
            abandon_parked_run(ctx, thread, "run cancelled")
        return current
    return ctx.runs.get(thread_id, run_id)


def _stop_execution(ctx: Context, run_id: str) -> None:
    """Best effort: the fence already keeps a cancelled run from writing; this saves its compute."""
    try:
        ctx.clients.sfn.stop_execution(executionArn=execution_arn(ctx, run_id), error="Cancelled")
    except Exception:
        logger.debug("stop_execution for %s did nothing", run_id, exc_info=True)


def _complete_rollback(ctx: Context, thread_id: str, run_id: str) -> None:
    """Delete a rolled-back run and everything it wrote, then free the thread it held under the
    rollback marker. Idempotent: dispatch finishes a rollback whose canceller died."""
    ctx.checkpointer.delete_for_runs([run_id])
    ctx.runs.delete(thread_id, run_id)
    ctx.events.delete_run(run_id)
    ctx.events.end(run_id, {"status": "interrupted"})  # a reader still tailing the run ends
    waiting = _waiting(ctx, thread_id)
    settled = (
        "busy" if waiting else _settled_thread_status(ctx, thread_id, _thread_graph(ctx, thread_id), "interrupted")
    )
    ctx.threads.release_lease(thread_id, ROLLBACK + run_id, status=settled)
    if waiting or _waiting(ctx, thread_id):
        ring_doorbell(ctx, thread_id, dedup=f"rollback:{run_id}")


def abandon_parked_run(ctx: Context, thread: dict[str, Any], cause: str) -> None:
    """Release a parked execution through its token (moto's StopExecution cannot reach a task
    token wait; SendTaskFailure ends it the same way on AWS): Park's Catch goes to Abandoned."""
    token, parked = thread.get("task_token"), thread.get("parked_run_id")
    if not token:
        return
    try:
        ctx.clients.sfn.send_task_failure(taskToken=token, error="Abandoned", cause=cause)
    except ClientError:  # spent, timed out, or the execution is gone
        pass
    if parked:
        ctx.threads.forget_park(thread["thread_id"], parked)


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
        if k
        in (
            "config",
            "context",
            "stream_mode",
            "stream_subgraphs",
            "stream_resumable",
            "durability",
            "interrupt_before",
            "interrupt_after",
            "interrupt_deadline_seconds",
            "on_interrupt_deadline",
        )
    }
    kwargs["command"] = {"resume": action["value"]}
    resume = base_run(
        thread_id,
        {"assistant_id": parked["assistant_id"], "graph_id": parked["graph_id"]},
        kwargs,
        metadata={**(parked.get("metadata") or {}), "resumed_from": run_id, "resumed_by": "interrupt_deadline"},
        multitask_strategy=parked.get("multitask_strategy"),
        **{k: parked[k] for k in ("assistant_config", "assistant_context") if k in parked},
    )
    resume["status"] = "running"
    # Lease first: a crash before the run exists leaves a lease on a missing run, which
    # admission frees; the other order could leave a running run nobody executes.
    if not ctx.threads.take_parked(thread_id, run_id, resume["run_id"]):
        return None
    ctx.runs.create(resume)
    return resume["run_id"]
