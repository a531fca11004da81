"""Admission: a new run queues behind its thread's runs, and the thread's first due run starts
when nobody holds the thread.

The SQS FIFO queue (group = thread) only rings a doorbell for a thread; what decides which run
executes is the thread lease, a conditional write on the thread item. Dispatch and finish both
lead to `admit_next_run`, which starts the oldest due pending run if nobody holds the thread,
and clears a lease left behind by a crash.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

from stepgraph import tracing
from stepgraph.engine.cancellation import cancel_behind, complete_rollback
from stepgraph.engine.context import Context
from stepgraph.engine.ids import id_time_ms, new_run_id
from stepgraph.engine.lease import ROLLBACK, runs_waiting, settled_thread_status
from stepgraph.engine.usage import charge_run
from stepgraph.storage import Conflict, ThreadMissing, entry_due_ms, entry_run_id, now_iso, queue_entry
from stepgraph.vocabulary import DEAD_EXECUTION, DoubleText, ExecutionStatus, RunStatus, ThreadStatus

__all__ = ["admit_next_run", "base_run", "continues_thread", "insert_run", "submit_run"]

logger = logging.getLogger(__name__)

# A due run may wait this long inside dispatch instead of on a timer.
_DUE_SLACK_MS = 50
# An ended run still holding its thread this long after its last status change lost its
# finish (every retry of it): dispatch frees the thread.
_STALE_HOLDER_SECONDS = 60
# Inserts on one thread are ordered by a conditional write on the thread's tail; within this
# process they queue on a lock instead of retrying each other's writes.
_insert_locks = [threading.Lock() for _ in range(64)]


def base_run(thread_id: str, assistant: dict[str, Any], kwargs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A new pending run's record (its id and timestamps are set again when it is inserted)."""
    now = now_iso()
    return {
        "run_id": new_run_id(),
        "thread_id": thread_id,
        "assistant_id": assistant["assistant_id"],
        "graph_id": assistant["graph_id"],
        "created_at": now,
        "updated_at": now,
        "status": RunStatus.PENDING,
        "metadata": extra.pop("metadata", None) or {},
        "kwargs": kwargs,
        "multitask_strategy": extra.pop("multitask_strategy", None) or DoubleText.ENQUEUE,
        "langsmith_session_name": None,
        **extra,
    }


def submit_run(ctx: Context, run: dict[str, Any], *, after_seconds: float = 0) -> None:
    """Queue a run on its thread under its double-texting strategy: `reject` raises Conflict if
    the thread holds or queues a run (nothing is written); `interrupt` and `rollback` cancel the
    runs it was created behind; `enqueue` waits behind them. Raises ThreadMissing."""
    strategy = run.get("multitask_strategy") or DoubleText.ENQUEUE
    behind = insert_run(ctx, run, reject=strategy == DoubleText.REJECT, after_seconds=after_seconds)
    if strategy in (DoubleText.INTERRUPT, DoubleText.ROLLBACK):
        cancel_behind(ctx, run["thread_id"], behind, strategy)


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
    with tracing.span("admit run", current=True, attributes={"thread_id": thread_id}) as span:
        # The run carries this span's context to every later hop (dispatch, its steps, park,
        # finish, its webhook), and its trace id where users can see it.
        run["trace"] = tracing.carrier()
        trace_id = tracing.trace_id_of(span)
        if trace_id:
            run["metadata"] = {**(run.get("metadata") or {}), "trace_id": trace_id}
        inflight = _insert_run(ctx, run, reject=reject, after_seconds=after_seconds)
        span.set_attribute("run_id", run["run_id"])
    return inflight


def _insert_run(ctx: Context, run: dict[str, Any], *, reject: bool, after_seconds: float) -> list[str]:
    thread_id = run["thread_id"]
    with _insert_locks[hash(thread_id) % len(_insert_locks)]:
        for attempt in range(100):
            state = ctx.queue.state(thread_id)
            if state is None:
                raise ThreadMissing(thread_id)
            if reject and (state.holder or state.pending):
                raise Conflict(f"thread {thread_id} is busy")
            run["run_id"] = new_run_id(after=state.tail)
            due_ms = id_time_ms(run["run_id"]) + int(after_seconds * 1000)
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
    charge_run(thread_id, run["run_id"])  # the request that creates a run is on its bill
    ctx.doorbell.ring(thread_id, dedup=run["run_id"])
    inflight = [entry_run_id(e) for e in state.pending]
    if state.holder and not state.holder.startswith(ROLLBACK):
        inflight.append(state.holder)
    return inflight


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
            ctx.executions.ring_when_due(thread_id, run_id, wait_ms)
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
        _start(ctx, run, state.task_token, state.parked_run_id)
        return run_id
    return None


def continues_thread(kwargs: dict[str, Any]) -> bool:
    """A Command, or no input at all (continue after interrupt_before/after), resumes the
    parked execution; new input, or a replay from a checkpoint, starts a fresh one."""
    if kwargs.get("command"):
        return True
    return "input" not in kwargs and not kwargs.get("checkpoint_id") and not kwargs.get("checkpoint")


def _start(ctx: Context, run: dict[str, Any], parked_token: str | None, parked_run_id: str | None = None) -> None:
    resumes = bool(parked_token) and continues_thread(run.get("kwargs", {}))
    with tracing.span(
        "resume execution" if resumes else "start execution",
        parent=run.get("trace"),
        current=tracing.in_trace(run.get("trace")),  # under dispatch when it rang for this run's trace
        attributes={"run_id": run["run_id"], "thread_id": run["thread_id"]},
    ):
        _start_traced(ctx, run, parked_token, parked_run_id)


def _start_traced(ctx: Context, run: dict[str, Any], parked_token: str | None, parked_run_id: str | None) -> None:
    if parked_token:
        if continues_thread(run.get("kwargs", {})):
            if ctx.executions.resume(parked_token, run):  # the parked execution itself goes on
                _record_parked_execution(ctx, run, parked_run_id)
                return
        else:
            ctx.executions.abandon(parked_token, "new input on the thread")
    ctx.executions.start(run)


def _record_parked_execution(ctx: Context, run: dict[str, Any], parked_run_id: str | None) -> None:
    """A resume run lives in the execution the parked run stopped in: record it now, so the
    reaper knows the run even if that execution ends before the run's first Step records it."""
    parked = ctx.runs.get(run["thread_id"], parked_run_id) if parked_run_id else None
    if parked is not None and parked.get("execution"):
        ctx.runs.record_execution(run["thread_id"], run["run_id"], parked["execution"])


def _recover_holder(ctx: Context, thread_id: str, holder: str) -> bool:
    """True if the thread's holder turned out to be stale and was cleared (look again)."""
    if holder.startswith(ROLLBACK):
        # A rollback stopped between holding the thread and releasing it: finish its work.
        run_id = holder.removeprefix(ROLLBACK)
        ctx.executions.stop(ctx.runs.get(thread_id, run_id) or {"run_id": run_id})
        complete_rollback(ctx, thread_id, run_id)
        return True
    held = ctx.runs.get(thread_id, holder)
    if held is not None and held["status"] == RunStatus.RUNNING:
        _ensure_started(ctx, held)
        return False
    if held is not None and held["status"] == RunStatus.PENDING:
        # Held while pending: an admission from before the transactional one. Finish the job.
        try:
            run = ctx.runs.transition(thread_id, holder, to=RunStatus.RUNNING, expected=(RunStatus.PENDING,))
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
    held = held or {}
    if runs_waiting(ctx, thread_id):
        settled = ThreadStatus.BUSY
    else:
        settled = settled_thread_status(ctx, thread_id, held.get("status", ""), held.get("graph_id"))
    ctx.threads.release_lease(thread_id, holder, status=settled)
    return True


def _age_seconds(run: dict[str, Any]) -> float:
    try:
        return time.time() - datetime.fromisoformat(run["updated_at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return float("inf")


def _ensure_started(ctx: Context, run: dict[str, Any]) -> None:
    """A running run has a live execution. Unless the dispatch that admitted it died before
    StartExecution: a redelivered doorbell starts it (same name and input: idempotent). Or its
    execution ended without Finish and the reaper never heard: the doorbell reaps it."""
    if run.get("execution") is None and continues_thread(run.get("kwargs", {})):
        return  # it continues a parked execution named after an earlier run, not recorded yet
    execution = ctx.executions.of_run(run)
    described = ctx.executions.describe(execution)
    if described is None:
        if run.get("execution") is None:
            logger.warning("run %s was admitted but never started; starting it", run["run_id"])
            _start(ctx, run, None)
        elif (run.get("handover") or {}).get("execution") == execution:
            logger.warning("run %s was handed over to %s, never started; starting it", run["run_id"], execution)
            ctx.executions.hand_over(run, run["handover"])
        return
    status = ExecutionStatus(described["status"])
    if status in DEAD_EXECUTION:
        from stepgraph.engine.recovery import reap_execution  # recovery finishes runs: completion imports us

        reap_execution(
            ctx, run["thread_id"], execution, status, error=described.get("error"), cause=described.get("cause")
        )
