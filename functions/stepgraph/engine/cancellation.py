"""Cancelling a run, the peer's way: it ends `interrupted`; a rollback deletes it and every
checkpoint it wrote. Double-texting's interrupt and rollback strategies come through here.

A pending run leaves the queue in the same write that ends it. A running run loses the lease in
the same write that ends it, so from then on its fenced checkpoint writes fail and a late finish
cannot overwrite the cancel; a rollback keeps the thread held under a marker until the run's
checkpoints are gone, so no other run can start from them. A parked run (its execution waits on
a task token, beyond StopExecution's reach) is released through its token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stepgraph.engine.context import Context
from stepgraph.engine.lease import ROLLBACK, runs_waiting, settled_status, settled_thread_status
from stepgraph.engine.webhooks import queue_webhook
from stepgraph.storage import Conflict
from stepgraph.vocabulary import DoubleText, RunStatus, ThreadStatus, WebhookStatus

__all__ = ["abandon_parked_run", "cancel_behind", "cancel_run", "complete_rollback"]

_ATTEMPTS = 10


class _Moved(Exception):
    """The run or its thread changed between our read and our write: read again."""


def cancel_run(ctx: Context, run: dict[str, Any], action: str = DoubleText.INTERRUPT) -> dict[str, Any] | None:
    """Cancel a run (`action` interrupt or rollback). Returns the run as it now is, None once
    deleted. A run already over is returned as it is (its parked execution, if any, released)."""
    thread_id, run_id = run["thread_id"], run["run_id"]
    rollback = action == DoubleText.ROLLBACK
    for _ in range(_ATTEMPTS):
        current = ctx.runs.get(thread_id, run_id)
        if current is None:
            return None
        try:
            if current["status"] == RunStatus.PENDING:
                return _cancel_pending(ctx, current, rollback)
            if current["status"] == RunStatus.RUNNING:
                return _cancel_running(ctx, current, rollback)
        except _Moved:
            continue
        _release_parked(ctx, current)
        return current
    return ctx.runs.get(thread_id, run_id)


def cancel_behind(ctx: Context, thread_id: str, run_ids: Sequence[str], action: str) -> None:
    """Double-texting with interrupt / rollback: cancel the runs a new run was created behind.

    Pending runs come first, the holder last: when the lease frees, the new run is the oldest
    pending run left, so nothing older is admitted just to be cancelled.
    """
    for run_id in run_ids:
        cancel_run(ctx, {"thread_id": thread_id, "run_id": run_id}, action)


def _cancel_pending(ctx: Context, run: dict[str, Any], rollback: bool) -> dict[str, Any] | None:
    thread_id, run_id = run["thread_id"], run["run_id"]
    state = ctx.queue.state(thread_id)
    entry = state.entry_of(run_id) if state else None
    if entry is not None:
        if not ctx.queue.withdraw(thread_id, run_id, entry):
            raise _Moved  # admitted meanwhile
    else:  # a pending run that was never queued (written directly): just end it
        try:
            ctx.runs.transition(thread_id, run_id, to=RunStatus.INTERRUPTED, expected=(RunStatus.PENDING,))
        except Conflict:
            raise _Moved from None
    ctx.events.end(run_id, {"status": RunStatus.INTERRUPTED})
    queue_webhook(ctx, run, WebhookStatus.ROLLBACK if rollback else WebhookStatus.INTERRUPTED)
    if rollback:  # it never ran: nothing of it to undo but the record
        ctx.runs.delete(thread_id, run_id)
        ctx.events.delete_run(run_id)
        ctx.events.end(run_id, {"status": RunStatus.INTERRUPTED})
    if not runs_waiting(ctx, thread_id):
        ctx.queue.settle(thread_id, settled_status(ctx, run, RunStatus.INTERRUPTED))
    elif state and not state.holder and state.pending[:1] == (entry,):
        # It was first in line on a free thread: the next one may be due now.
        ctx.doorbell.ring(thread_id, dedup=f"cancel:{run_id}")
    return None if rollback else {**run, "status": RunStatus.INTERRUPTED}


def _cancel_running(ctx: Context, run: dict[str, Any], rollback: bool) -> dict[str, Any] | None:
    thread_id, run_id = run["thread_id"], run["run_id"]
    waiting = runs_waiting(ctx, thread_id)
    status = ThreadStatus.BUSY if waiting or rollback else settled_status(ctx, run, RunStatus.INTERRUPTED)
    hold = ROLLBACK + run_id if rollback else None
    if not ctx.queue.stop(thread_id, run_id, status=status, hold=hold):
        return _cancel_unleased(ctx, run, rollback)
    ctx.executions.stop(run)
    ctx.events.end(run_id, {"status": RunStatus.INTERRUPTED})
    if rollback:
        complete_rollback(ctx, thread_id, run_id)  # releases the thread and rings
        return None
    queue_webhook(ctx, run, WebhookStatus.INTERRUPTED)
    if waiting or runs_waiting(ctx, thread_id):
        ctx.doorbell.ring(thread_id, dedup=f"cancel:{run_id}")
    return {**run, "status": RunStatus.INTERRUPTED}


def _cancel_unleased(ctx: Context, run: dict[str, Any], rollback: bool) -> dict[str, Any] | None:
    """The lease was not the run's to take away."""
    thread_id, run_id = run["thread_id"], run["run_id"]
    state = ctx.queue.state(thread_id)
    if state is None or state.holder == run_id:
        raise _Moved  # it finished meanwhile (or the thread is gone)
    # Running without the lease (a lease cleared by recovery): it cannot write anyway.
    try:
        ctx.runs.transition(thread_id, run_id, to=RunStatus.INTERRUPTED, expected=(RunStatus.RUNNING,))
    except Conflict:
        raise _Moved from None
    ctx.events.end(run_id, {"status": RunStatus.INTERRUPTED})
    if rollback:
        ctx.checkpointer.delete_for_runs([run_id], thread_id=thread_id)
        queue_webhook(ctx, run, WebhookStatus.ROLLBACK)
        ctx.runs.delete(thread_id, run_id)
        return None
    queue_webhook(ctx, run, WebhookStatus.INTERRUPTED)
    return {**run, "status": RunStatus.INTERRUPTED}


def _release_parked(ctx: Context, run: dict[str, Any]) -> None:
    """A run over but parked (stopped on an interrupt): release its waiting execution."""
    thread = ctx.threads.get(run["thread_id"])
    if thread and thread.get("parked_run_id") == run["run_id"] and not thread.get("active_run_id"):
        abandon_parked_run(ctx, thread, "run cancelled")


def complete_rollback(ctx: Context, thread_id: str, run_id: str) -> None:
    """Delete a rolled-back run and everything it wrote, then free the thread it held under the
    rollback marker. Idempotent: dispatch finishes a rollback whose canceller died. The webhook
    is queued before the run record goes, so a retry that still finds the record queues it again
    (the same delivery id), and one that does not finds it queued."""
    ctx.checkpointer.delete_for_runs([run_id], thread_id=thread_id)
    run = ctx.runs.get(thread_id, run_id)
    if run is not None:
        queue_webhook(ctx, run, WebhookStatus.ROLLBACK)
    ctx.runs.delete(thread_id, run_id)
    ctx.events.delete_run(run_id)
    ctx.events.end(run_id, {"status": RunStatus.INTERRUPTED})  # a reader still tailing the run ends
    waiting = runs_waiting(ctx, thread_id)
    settled = ThreadStatus.BUSY if waiting else settled_thread_status(ctx, thread_id, RunStatus.INTERRUPTED)
    ctx.threads.release_lease(thread_id, ROLLBACK + run_id, status=settled)
    if waiting or runs_waiting(ctx, thread_id):
        ctx.doorbell.ring(thread_id, dedup=f"rollback:{run_id}")


def abandon_parked_run(ctx: Context, thread: dict[str, Any], cause: str) -> None:
    """End the thread's parked execution through its token and forget the park."""
    token, parked = thread.get("task_token"), thread.get("parked_run_id")
    if not token:
        return
    ctx.executions.abandon(token, cause)
    if parked:
        ctx.threads.forget_park(thread["thread_id"], parked)
