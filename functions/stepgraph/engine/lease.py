"""Who holds a thread, and the status the thread settles to when its run lets go.

A thread executes one run at a time: the run holds the thread's lease (`active_run_id`, a
conditional write). Admission takes it; park, finish and cancel release it and ring the
doorbell when runs wait behind.
"""

from __future__ import annotations

from typing import Any

from stepgraph.engine.context import Context
from stepgraph.engine.state import get_thread_state, thread_graph
from stepgraph.vocabulary import RunStatus, StepOutcome, ThreadStatus

__all__ = ["ROLLBACK", "release_thread", "runs_waiting", "settled_status", "settled_thread_status"]

# A thread held by this name is being rolled back: nothing may start until its writes are gone.
ROLLBACK = "rollback:"


def settled_status(ctx: Context, run: dict[str, Any], run_status: str, outcome: str | None = None) -> ThreadStatus:
    """The thread's status once this run no longer holds it (the peer's rules)."""
    if run_status == RunStatus.ERROR:
        return ThreadStatus.ERROR
    if outcome == StepOutcome.DONE:  # the step saw no next task: nothing left to interrupt
        return ThreadStatus.IDLE
    snapshot = get_thread_state(ctx, run["thread_id"], run["graph_id"])
    return ThreadStatus.INTERRUPTED if snapshot.next else ThreadStatus.IDLE


def settled_thread_status(ctx: Context, thread_id: str, run_status: str, graph_id: str | None = None) -> ThreadStatus:
    """As `settled_status`, for a thread whose run record may be gone (its graph from the thread)."""
    graph_id = graph_id or thread_graph(ctx, ctx.threads.get(thread_id) or {})
    if not graph_id:
        return ThreadStatus.ERROR if run_status == RunStatus.ERROR else ThreadStatus.IDLE
    return settled_status(ctx, {"thread_id": thread_id, "graph_id": graph_id}, run_status)


def runs_waiting(ctx: Context, thread_id: str) -> bool:
    """Runs are queued on the thread (a consistent read of the thread item)."""
    state = ctx.queue.state(thread_id)
    return bool(state and state.pending)


def release_thread(ctx: Context, run: dict[str, Any], settled: ThreadStatus, *, park_token: str | None = None) -> bool:
    """Free the run's lease; True if runs wait for the thread (the caller rings its doorbell).

    Checking for waiting runs again after the release closes the race with a run inserted
    meanwhile: either its own doorbell finds the lease free, or this check finds it.
    """
    thread_id, run_id = run["thread_id"], run["run_id"]
    # Usually nothing waits: one write frees the lease and settles the status if nothing is queued.
    if ctx.threads.release_lease(thread_id, run_id, status=settled, park_token=park_token, if_idle=True):
        return False
    waiting = runs_waiting(ctx, thread_id)
    status = ThreadStatus.BUSY if waiting else settled
    ctx.threads.release_lease(thread_id, run_id, status=status, park_token=park_token)
    return waiting or runs_waiting(ctx, thread_id)
