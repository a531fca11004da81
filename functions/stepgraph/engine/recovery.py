"""Recovery: no run stays `running` and no queued run waits for ever when a message is lost.

- The reaper. A run's execution can end without reaching Finish: a state machine error, Finish
  failing past its retries, a timeout, a StopExecution from outside. An EventBridge rule on the
  run state machine's status changes (FAILED, TIMED_OUT, ABORTED) hands that end to
  `reap_execution`: the run the execution carried ends `error` with the execution's error, and
  `finish_run` frees its thread and rings for the next queued run, as Finish would have. A cancel
  needs nothing from it: the cancel ends the run `interrupted` and frees the lease in one write
  before it stops the execution.
- The sweeper. A queued run whose doorbell was lost (the SQS send failed after the run was
  written, or the message went to the dead-letter queue) waits on a free thread for nobody.
  `ring_lost_doorbells`, on a schedule, finds due pending runs older than
  `Settings.lost_doorbell_seconds` through the runs table's sparse index and rings the doorbell
  of each such thread whose lease is not live; dispatch decides what to admit.

Both are safe to run twice: a duplicate event finds the lease gone or held by another run's
execution, and a second doorbell admits nothing more.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from stepgraph.engine.admission import continues_thread
from stepgraph.engine.completion import finish_run
from stepgraph.engine.context import Context
from stepgraph.engine.handover import handing_over_from
from stepgraph.engine.lease import ROLLBACK
from stepgraph.storage import QueueState, entry_due_ms
from stepgraph.vocabulary import ExecutionStatus, RunStatus

__all__ = ["reap_execution", "ring_lost_doorbells"]

logger = logging.getLogger(__name__)

# The run's error when the execution's end names none (StopExecution without an error, say).
_ENDED = {
    ExecutionStatus.FAILED: "ExecutionFailed",
    ExecutionStatus.TIMED_OUT: "ExecutionTimedOut",
    ExecutionStatus.ABORTED: "ExecutionAborted",
}


def reap_execution(
    ctx: Context,
    thread_id: str,
    execution: str,
    status: ExecutionStatus,
    *,
    error: str | None = None,
    cause: str | None = None,
) -> str | None:
    """The run state machine's `execution` (on `thread_id`) ended `status` without Finish: end
    the run it carried `error` and free its thread. Returns that run's id; None if the execution
    carried none that is still holding the thread (it finished, a cancel ended it, it moved on to
    a fresh execution, or this end was reported before). An execution that ends while handing
    its run over ends nothing: the run goes on in the fresh execution."""
    state = ctx.queue.state(thread_id)
    if state is None or state.holder is None:
        return None
    if state.holder.startswith(ROLLBACK):
        # A rollback holds the thread; if its canceller died, a doorbell lets dispatch finish it.
        rolled_back = ctx.runs.get(thread_id, state.holder.removeprefix(ROLLBACK))
        if rolled_back is not None and _carried_by(rolled_back, execution):
            ctx.doorbell.ring(thread_id, dedup=f"reap:{rolled_back['run_id']}")
        return None
    run = ctx.runs.get(thread_id, state.holder)
    if run is None:
        return None
    if handing_over_from(run, execution):
        # It ended while its Step was handing the run over: the run lives on in the execution
        # recorded on it, which that Step may not have started yet (starting it is idempotent).
        ctx.executions.hand_over(run, run["handover"])
        return None
    if not _carried_by(run, execution):
        return None
    logger.warning("run %s: its execution %s ended %s without finishing it", run["run_id"], execution, status)
    failure = {
        "Error": error or _ENDED.get(status, "ExecutionEnded"),
        "Cause": cause or f"the run's Step Functions execution ended {status} before the run finished",
    }
    finish_run(ctx, run["run_id"], thread_id, None, failure)  # a run that did finish keeps its status
    run_id: str = run["run_id"]
    return run_id


def _carried_by(run: dict[str, Any], execution: str) -> bool:
    """`execution` is the one the run lives in: the one recorded on it; with no record yet (its
    first commit records it), the one named after it."""
    recorded = run.get("execution")
    if recorded is None:
        return bool(execution.rsplit(":", 1)[-1] == run["run_id"])
    return bool(recorded == execution)


def ring_lost_doorbells(ctx: Context, now_ms: int | None = None) -> list[str]:
    """Ring the doorbell of every thread that has a due pending run older than
    `lost_doorbell_seconds` and no live lease; returns those threads."""
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    cutoff = now_ms - int(ctx.settings.lost_doorbell_seconds * 1000)
    rung = []
    for thread_id in dict.fromkeys(thread for thread, _ in ctx.queue.overdue(cutoff)):
        state = ctx.queue.state(thread_id)  # the index lags: decide on the thread item
        if state is None or not any(entry_due_ms(entry) < cutoff for entry in state.pending):
            continue
        if _lease_is_live(ctx, state, thread_id):
            continue  # its run's finish (or the reaper) rings when it lets go
        logger.warning("thread %s: a queued run is overdue and nothing holds the thread; ringing again", thread_id)
        ctx.doorbell.ring(thread_id, dedup=f"sweep:{now_ms}:{thread_id}")
        rung.append(thread_id)
    return rung


def _lease_is_live(ctx: Context, state: QueueState, thread_id: str) -> bool:
    """The thread's holder is a running run whose execution runs (or a resume about to)."""
    if state.holder is None or state.holder.startswith(ROLLBACK):
        return False  # free, or a rollback dispatch finishes
    run = ctx.runs.get(thread_id, state.holder)
    if run is None or run["status"] != RunStatus.RUNNING:
        return False  # its finish was lost: dispatch frees a stale lease
    if run.get("execution") is None and continues_thread(run.get("kwargs", {})):
        return True  # resumed a parked execution a moment ago; its first Step records which
    return ctx.executions.status(ctx.executions.of_run(run)) == ExecutionStatus.RUNNING
