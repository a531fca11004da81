"""A thread's life (create, delete, prune) and operations over many runs at once (cancel in bulk,
count the queue). The API's routes and a stateless cron's fire call these; nothing here is on a
run's steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from stepgraph.engine.cancellation import abandon_parked_run, cancel_run
from stepgraph.engine.context import Context
from stepgraph.engine.errors import RunsMissing
from stepgraph.storage import now_iso
from stepgraph.vocabulary import INFLIGHT, DoubleText, RunStatus, ThreadStatus

__all__ = ["cancel_runs", "delete_thread", "new_thread", "prune_threads", "queue_counts"]


def new_thread(ctx: Context, thread_id: str, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create an idle thread; its document, or None if the thread exists already."""
    now = now_iso()
    doc = {
        "thread_id": thread_id,
        "created_at": now,
        "updated_at": now,
        "state_updated_at": now,
        "metadata": metadata or {},
        "config": {},
        "status": ThreadStatus.IDLE,
    }
    return doc if ctx.threads.create(doc) else None


def delete_thread(ctx: Context, thread_id: str, *, with_crons: bool = True) -> None:
    """The thread, its crons (and their schedules), its runs, their event logs and its checkpoints.
    A run in flight is cancelled first: its execution stops and its lease goes, so nothing it still
    does writes behind the delete. `with_crons=False`: a stateless cron's thread as its run ends
    (nobody put a cron on it; one who did sees its fires skipped, the thread gone)."""
    if with_crons:
        from stepgraph.engine.crons import delete_cron  # crons queue runs: admission imports cancellation

        for cron in ctx.crons.search(thread_id=thread_id):
            delete_cron(ctx, cron["cron_id"])
    _cancel_inflight(ctx, thread_id)
    thread = ctx.threads.get(thread_id)
    if thread and thread.get("task_token"):  # don't leave its parked execution waiting a year
        abandon_parked_run(ctx, thread, "thread deleted")
    for run in ctx.runs.list(thread_id):
        ctx.events.delete_run(run["run_id"])
    ctx.runs.delete_thread(thread_id)
    ctx.checkpointer.delete_thread(thread_id)
    ctx.threads.delete(thread_id)


def prune_threads(ctx: Context, thread_ids: Sequence[str], strategy: str = "delete") -> int:
    """`delete`: the threads go entirely; `keep_latest`: each keeps only its latest checkpoint
    (per namespace). Threads that do not exist are skipped; returns how many were pruned.
    A thread with a run in flight is cancelled first, so nothing writes behind the prune."""
    pruned = 0
    for thread_id in dict.fromkeys(thread_ids):
        if ctx.threads.get(thread_id) is None:
            continue
        if strategy == "delete":
            delete_thread(ctx, thread_id)
        else:
            _cancel_inflight(ctx, thread_id)
            ctx.checkpointer.prune([thread_id], strategy="keep_latest")
        pruned += 1
    return pruned


def _cancel_inflight(ctx: Context, thread_id: str) -> None:
    """Cancel the thread's pending and running runs, pending first (as `cancel_runs`)."""
    inflight = [run for run in ctx.runs.list(thread_id) if run["status"] in INFLIGHT]
    for run in sorted(inflight, key=lambda r: r["status"] != RunStatus.PENDING):
        cancel_run(ctx, run, DoubleText.INTERRUPT)


def cancel_runs(
    ctx: Context,
    *,
    thread_id: str | None = None,
    run_ids: Sequence[str] | None = None,
    status: str | None = None,
    action: str = DoubleText.INTERRUPT,
    where: Callable[[dict[str, Any]], bool] | None = None,
) -> int:
    """Cancel the named runs of one thread, or every run in `status` (pending, running or all
    inflight) for which `where` holds (the caller's view: runs of threads it may see). Runs
    already over are left alone. Returns how many runs were cancelled."""
    if status is not None:
        statuses = INFLIGHT if status == "all" else (status,)
        runs = [run for run in ctx.runs.with_status(statuses) if where is None or where(run)]
    else:
        assert thread_id is not None and run_ids is not None
        found = [ctx.runs.get(thread_id, run_id) for run_id in dict.fromkeys(run_ids)]
        missing = [run_id for run_id, run in zip(dict.fromkeys(run_ids), found) if run is None]
        if missing:
            raise RunsMissing(", ".join(missing))
        runs = [run for run in found if run is not None]
    cancelled = 0
    # Pending runs first: cancelling a holder first would admit the next pending run just to
    # cancel it too.
    inflight = (r for r in runs if r["status"] in INFLIGHT)
    for run in sorted(inflight, key=lambda r: r["status"] != RunStatus.PENDING):
        cancel_run(ctx, run, action)
        cancelled += 1
    return cancelled


def queue_counts(ctx: Context) -> dict[str, int]:
    """Runs waiting and running, across every thread."""
    runs = ctx.runs.with_status(INFLIGHT)
    return {
        "n_pending": sum(1 for r in runs if r["status"] == RunStatus.PENDING),
        "n_running": sum(1 for r in runs if r["status"] == RunStatus.RUNNING),
    }
