"""The human-input deadline: what happens when a parked run waited longer than allowed."""

from __future__ import annotations

import logging

from stepgraph import tracing
from stepgraph.engine.admission import base_run
from stepgraph.engine.context import Context
from stepgraph.engine.interrupts import deadline_action
from stepgraph.engine.webhooks import queue_webhook
from stepgraph.storage import Conflict
from stepgraph.vocabulary import RunStatus, WebhookStatus

__all__ = ["expire_parked_run"]

logger = logging.getLogger(__name__)

# What a deadline resume keeps of the parked run's options.
_RESUME_KWARGS = (
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


def expire_parked_run(ctx: Context, run_id: str, thread_id: str, execution: str | None = None) -> str | None:
    """The deadline for human input passed while the run was parked (Park timed out).

    Action "resume": a new run resumes the thread with the configured value and continues
    this same execution, `execution`, recorded on it (its id goes back to the state machine).
    Action "end": the parked run ends with status `timeout`; the thread keeps its interrupt, and
    a later resume starts a fresh execution. Nothing happens if someone moved first (resume, new input, delete).
    Safe to run twice: a retry finds the resume run it already leased.
    """
    parked = ctx.runs.get(thread_id, run_id)
    thread = ctx.threads.get(thread_id)
    if parked is None or thread is None:
        return None
    holder: str | None = thread.get("active_run_id")
    if holder and holder != run_id:
        held = ctx.runs.get(thread_id, holder)
        if held and (held.get("metadata") or {}).get("resumed_from") == run_id and held["status"] == RunStatus.RUNNING:
            return holder  # this function ran before and its reply was lost
    if thread.get("parked_run_id") != run_id:
        return None
    action = deadline_action(parked)
    if action["action"] != "resume":
        ctx.threads.forget_park(thread_id, run_id)
        try:
            timed_out = ctx.runs.transition(thread_id, run_id, to=RunStatus.TIMEOUT, expected=(RunStatus.SUCCESS,))
        except Conflict:
            logger.info("parked run %s left `success` before its deadline ended it; it stays as it is", run_id)
        else:
            with tracing.span("expire park", parent=parked.get("trace"), attributes={"run_id": run_id}):
                queue_webhook(ctx, timed_out, WebhookStatus.TIMEOUT)
        return None
    kwargs = {k: v for k, v in (parked.get("kwargs") or {}).items() if k in _RESUME_KWARGS}
    kwargs["command"] = {"resume": action["value"]}
    resume = base_run(
        thread_id,
        {"assistant_id": parked["assistant_id"], "graph_id": parked["graph_id"]},
        kwargs,
        metadata={**(parked.get("metadata") or {}), "resumed_from": run_id, "resumed_by": "interrupt_deadline"},
        multitask_strategy=parked.get("multitask_strategy"),
        # The resume runs as the parked run's user: a deadline, not a request, created it.
        **{k: parked[k] for k in ("assistant_config", "assistant_context", "auth_user") if k in parked},
    )
    resume["status"] = RunStatus.RUNNING
    if execution:
        resume["execution"] = execution
    # The deadline's resume goes on in the parked run's trace (its metadata names that trace).
    with tracing.span("expire park", parent=parked.get("trace"), attributes={"run_id": resume["run_id"]}):
        resume["trace"] = tracing.carrier()
        # Lease first: a crash before the run exists leaves a lease on a missing run, which
        # admission frees; the other order could leave a running run nobody executes.
        if not ctx.threads.take_parked(thread_id, run_id, resume["run_id"]):
            return None
        ctx.runs.create(resume)
    resume_id: str = resume["run_id"]
    return resume_id
