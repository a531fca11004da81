"""A run's end as the state machine reports it: parked on an interrupt, or finished.

Both are conditional on the run still running (a cancel's word stands), free the thread's lease
and ring its doorbell when runs wait behind, so the next one is admitted, and queue the run's
webhook.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from stepgraph import tracing
from stepgraph.client_errors import failure_payload
from stepgraph.engine.context import Context
from stepgraph.engine.deadlines import expire_parked_run
from stepgraph.engine.lease import release_thread, settled_status
from stepgraph.engine.webhooks import queue_webhook
from stepgraph.storage import Conflict
from stepgraph.vocabulary import RunStatus, StepOutcome, ThreadStatus, WebhookStatus

__all__ = ["finish_run", "park_run"]

logger = logging.getLogger(__name__)


def park_run(ctx: Context, run_id: str, thread_id: str, task_token: str) -> None:
    """The run stopped on an interrupt: it succeeds (as the peer reports it), the thread waits
    with the execution's task token for a resume."""
    try:
        run = ctx.runs.transition(thread_id, run_id, to=RunStatus.SUCCESS, expected=(RunStatus.RUNNING,))
    except Conflict:
        current = ctx.runs.get(thread_id, run_id)
        thread = ctx.threads.get(thread_id) or {}
        if current and current["status"] == RunStatus.SUCCESS and thread.get("task_token") == task_token:
            # This park ran before and got as far as parking the thread (a Lambda retry): only
            # the webhook may be missing; a second copy carries the same delivery id.
            with tracing.span("park", parent=current.get("trace"), attributes={"run_id": run_id, "retry": True}):
                queue_webhook(ctx, current, WebhookStatus.SUCCESS)
            return
        # Cancelled while the state machine entered Park: end the execution through its token,
        # or it would wait for its deadline (StopExecution cannot reach a token wait in moto).
        logger.info("run %s ended before parking (cancelled?); abandoning its execution", run_id)
        ctx.executions.abandon(task_token, "run cancelled")
        return
    with tracing.span("park", parent=run.get("trace"), attributes={"run_id": run_id, "thread_id": thread_id}):
        waiting = release_thread(ctx, run, ThreadStatus.INTERRUPTED, park_token=task_token)
        ctx.events.end(run_id, {"status": RunStatus.SUCCESS})
        if waiting:
            ctx.doorbell.ring(thread_id, dedup=f"park:{run_id}")
        queue_webhook(ctx, run, WebhookStatus.SUCCESS)


def finish_run(
    ctx: Context, run_id: str, thread_id: str, outcome: str | None, error: Any = None, execution: str | None = None
) -> dict[str, Any]:
    """Final status (conditional: never overwrites a cancel), free the lease, admit the next run.

    `outcome` is the last step's (`StepOutcome`); `expired` means Park timed out in `execution`,
    handed to the human-input deadline. Returns what the state machine needs next: the id of a
    run that resumes this execution, or None."""
    if outcome == StepOutcome.EXPIRED:
        return {"resume_run_id": expire_parked_run(ctx, run_id, thread_id, execution)}
    failure = None
    if error:
        # The step crashed past its retries: the error never reached the event log.
        failure = failure_payload(str(error.get("Error", "StepFailed")), _cause(error))
    status = RunStatus.ERROR if (failure or outcome == StepOutcome.ERROR) else RunStatus.SUCCESS
    try:
        run = ctx.runs.transition(
            thread_id, run_id, to=status, expected=(RunStatus.RUNNING,), patch={"error": failure} if failure else None
        )
    except Conflict:  # cancelled, rolled back or finished already: the first word stands
        current = ctx.runs.get(thread_id, run_id)
        if current is None:
            return {"resume_run_id": None}
        run, status = current, current["status"]
        # Finished already: this is a retry (or the reaper after a finish that failed past its
        # write), and the webhook may not have been queued. A cancel queues its own.
        finished = status in (RunStatus.SUCCESS, RunStatus.ERROR)
    else:
        finished = True
        if failure:
            ctx.events.append(run_id, "error", failure)
    with tracing.span("finish", parent=run.get("trace"), attributes={"run_id": run_id, "status": str(status)}):
        waiting = release_thread(ctx, run, settled_status(ctx, run, status, outcome))
        ctx.events.end(run_id, {"status": status})
        if waiting:
            ctx.doorbell.ring(thread_id, dedup=f"finish:{run_id}")
        if finished:
            queue_webhook(ctx, run, WebhookStatus(status))
    if run.get("cron_id") and run.get("kwargs", {}).get("on_completion") == "delete":
        # A stateless cron's run (on_run_completed "delete", the default): its thread goes with it.
        from stepgraph.engine.admin import delete_thread  # admin cancels runs: cancellation imports us

        delete_thread(ctx, thread_id, with_crons=False)
    return {"resume_run_id": None}


def _cause(error: dict[str, Any]) -> str:
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
        return str(parsed.get("errorMessage") or cause)
    except (ValueError, AttributeError):
        return str(cause)
