"""Crons: a schedule that creates runs. The API creates, changes and deletes them (each with its
EventBridge Scheduler schedule, `schedules`); the cron function fires them (`fire_cron`).

A fire creates its run through the normal admission path: on the cron's thread under its
double-texting strategy, or (stateless cron) on a new thread that the run's finish deletes
unless `on_run_completed` is `keep`. A fire delivered twice creates one run: the first
delivery claims (cron id, fire time) with a conditional write.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from stepgraph.engine.admin import new_thread
from stepgraph.engine.admission import base_run, submit_run
from stepgraph.engine.context import Context
from stepgraph.engine.crontime import next_fire
from stepgraph.engine.schedules import iso_utc
from stepgraph.storage import Conflict, ThreadMissing, now_iso
from stepgraph.vocabulary import DoubleText

__all__ = ["RUN_FIELDS", "create_cron", "cron_active", "delete_cron", "fire_cron", "update_cron"]

logger = logging.getLogger(__name__)

# The cron body's fields that each of its runs gets (its `payload`), as a run body has them.
RUN_FIELDS = (
    "input",
    "config",
    "context",
    "webhook",
    "interrupt_before",
    "interrupt_after",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "durability",
    "multitask_strategy",
)
# A fire claimed this long ago without a run recorded was claimed by a try that died (the cron
# function's timeout is 60 s): a redelivery takes it over.
_CLAIM_SECONDS = 120
_ATTEMPTS = 5  # optimistic writes of a cron that a PATCH or another fire may change meanwhile


def cron_active(cron: dict[str, Any]) -> bool:
    """Whether the cron's schedule should fire at its next_run_date."""
    if not cron.get("enabled", True) or not cron.get("next_run_date"):
        return False
    end = cron.get("end_time")
    return end is None or _instant(cron["next_run_date"]) <= _instant(end)


def create_cron(ctx: Context, cron: dict[str, Any]) -> dict[str, Any]:
    """Store a new cron (its next_run_date computed now) and arm its schedule."""
    now = now_iso()
    cron.update(cron_id=cron.get("cron_id") or str(uuid.uuid4()), created_at=now, updated_at=now)
    cron["next_run_date"] = iso_utc(next_fire(cron["schedule"], cron.get("timezone"), datetime.now(UTC)))
    ctx.crons.create(cron)
    try:
        _arm(ctx, cron)
    except BaseException:
        ctx.crons.delete(cron["cron_id"])  # no cron without its schedule
        raise
    return cron


def update_cron(ctx: Context, cron_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
    """Apply `changes` (cron fields; `payload` merged) and re-arm; None if the cron is gone. The
    next fire is computed anew from now when the schedule, its timezone or `enabled` change."""
    for _ in range(_ATTEMPTS):
        cron = ctx.crons.get(cron_id)
        if cron is None:
            return None
        new = {**cron, **changes, "payload": {**cron.get("payload", {}), **changes.get("payload", {})}}
        new["updated_at"] = now_iso()
        if any(new.get(k) != cron.get(k) for k in ("schedule", "timezone", "enabled")):
            new["next_run_date"] = iso_utc(next_fire(new["schedule"], new.get("timezone"), datetime.now(UTC)))
        try:
            new = ctx.crons.replace(new)
        except Conflict:
            continue  # a fire advanced it, or another PATCH: apply the changes to that
        _arm(ctx, new)
        return new
    raise Conflict(f"cron {cron_id} kept changing")


def delete_cron(ctx: Context, cron_id: str) -> bool:
    """The schedule first (nothing fires after), then the cron; False if there was no cron."""
    ctx.schedules.remove(cron_id)
    return ctx.crons.delete(cron_id)


def _arm(ctx: Context, cron: dict[str, Any]) -> None:
    ctx.schedules.arm(cron["cron_id"], _instant(cron["next_run_date"]), active=cron_active(cron))


# ---------------------------------------------------------------- a fire
def fire_cron(ctx: Context, cron_id: str, fire_at: str) -> dict[str, Any]:
    """The cron's schedule fired for `fire_at`: claim the fire, arm the next one, create the run.
    Safe to run twice, concurrently or after a crash: one run per (cron, fire time). Returns what
    happened (`run_id` and `thread_id`, or `skipped`: why no run)."""
    fire_at = iso_utc(_instant(fire_at))
    record = ctx.crons.claim_fire(cron_id, fire_at)
    if record is not None:
        if "run_id" in record or "skipped" in record or time.time() - record["claimed_at"] < _CLAIM_SECONDS:
            logger.info("cron %s fire %s was delivered again; it creates no second run", cron_id, fire_at)
            return {"skipped": "duplicate", **{k: record[k] for k in ("run_id", "thread_id") if k in record}}
        if not ctx.crons.take_over_fire(cron_id, fire_at, record):
            return {"skipped": "duplicate"}
        logger.warning("cron %s fire %s was claimed by a try that died; taking it over", cron_id, fire_at)
    try:
        return _fire_claimed(ctx, cron_id, fire_at, record)
    except BaseException:
        # The invocation fails and EventBridge Scheduler delivers the fire again: let that one run.
        ctx.crons.release_fire(cron_id, fire_at)
        raise


def _fire_claimed(ctx: Context, cron_id: str, fire_at: str, record: dict[str, Any] | None) -> dict[str, Any]:
    cron, why = _advance(ctx, cron_id, fire_at)
    if cron is None or why:
        ctx.crons.record_fire(cron_id, fire_at, skipped=why or "deleted")
        return {"skipped": why or "deleted"}
    thread_id = (record or {}).get("thread_id") or cron.get("thread_id") or str(uuid.uuid4())
    ctx.crons.record_fire(cron_id, fire_at, thread_id=thread_id)  # a takeover reuses the thread
    try:
        run = _create_run(ctx, cron, thread_id)
    except Conflict:  # multitask_strategy reject, the thread busy: the peer skips this fire too
        ctx.crons.record_fire(cron_id, fire_at, skipped="rejected")
        return {"skipped": "rejected"}
    except ThreadMissing:
        ctx.crons.record_fire(cron_id, fire_at, skipped="thread deleted")
        return {"skipped": "thread deleted"}
    if run is None:
        ctx.crons.record_fire(cron_id, fire_at, skipped="assistant deleted")
        return {"skipped": "assistant deleted"}
    ctx.crons.record_fire(cron_id, fire_at, run_id=run["run_id"])
    return {"run_id": run["run_id"], "thread_id": thread_id}


def _advance(ctx: Context, cron_id: str, fire_at: str) -> tuple[dict[str, Any] | None, str | None]:
    """The cron as this fire finds it, its next fire armed; and why this fire makes no run (None:
    it makes one). The advance is conditional on the cron's version: a PATCH meanwhile wins, and
    this fire is judged against the cron it left."""
    fired = _instant(fire_at)
    for _ in range(_ATTEMPTS):
        cron = ctx.crons.get(cron_id)
        if cron is None:
            return None, None
        if not cron.get("enabled", True):
            return cron, "disabled"
        if cron.get("end_time") and fired > _instant(cron["end_time"]):
            return cron, "ended"
        if _instant(cron["next_run_date"]) > fired:
            # Advanced already: by the try this one takes over, or a PATCH re-armed it.
            return cron, None
        # From now if this fire came late (retried deliveries): fires missed meanwhile are not
        # made up in a burst, as the peer advances from now too.
        following = next_fire(cron["schedule"], cron.get("timezone"), max(fired, datetime.now(UTC)))
        try:
            cron = ctx.crons.replace({**cron, "next_run_date": iso_utc(following)})
        except Conflict:
            continue
        ctx.schedules.rearm(cron_id, following, active=cron_active(cron))
        # A PATCH that wrote after us may have armed before us: the schedule must be the cron's last.
        latest = ctx.crons.get(cron_id)
        if latest is not None and latest["version"] != cron["version"]:
            ctx.schedules.rearm(cron_id, _instant(latest["next_run_date"]), active=cron_active(latest))
        return cron, None
    raise Conflict(f"cron {cron_id} kept changing")


def _create_run(ctx: Context, cron: dict[str, Any], thread_id: str) -> dict[str, Any] | None:
    """The fire's run, queued through admission; None if the cron's assistant is gone."""
    assistant = ctx.assistants.get(cron["assistant_id"])
    if assistant is None:
        return None
    payload = dict(cron.get("payload") or {})
    strategy = payload.pop("multitask_strategy", None) or DoubleText.ENQUEUE
    kwargs = {k: v for k, v in payload.items() if k in RUN_FIELDS and v is not None}
    config = dict(kwargs.get("config") or {})
    config["configurable"] = {**(config.get("configurable") or {}), "cron_id": cron["cron_id"]}
    kwargs["config"] = config
    kwargs.setdefault("stream_mode", ["values"])
    metadata = {**(cron.get("metadata") or {}), "cron_id": cron["cron_id"]}
    # The thread's graph, as a run created through the API stamps it: its state is read with it.
    stamp = {"graph_id": assistant["graph_id"], "assistant_id": assistant["assistant_id"]}
    if not cron.get("thread_id"):
        kwargs["on_completion"] = cron.get("on_run_completed") or "delete"
        if new_thread(ctx, thread_id, {**metadata, **stamp}) is None:
            logger.info("thread %s of a stateless cron run exists already (a retried fire)", thread_id)
    else:
        thread = ctx.threads.get(thread_id)
        if thread is None:
            raise ThreadMissing(thread_id)
        if (thread.get("metadata") or {}).get("graph_id") != assistant["graph_id"]:
            thread["metadata"] = {**(thread.get("metadata") or {}), **stamp}
            ctx.threads.update_doc(thread_id, thread)
    run = base_run(
        thread_id,
        assistant,
        kwargs,
        metadata=metadata,
        multitask_strategy=strategy,
        assistant_config=assistant.get("config") or {},
        assistant_context=assistant.get("context") or {},
        cron_id=cron["cron_id"],  # its finish deletes a stateless cron's thread (on_completion)
        **({"auth_user": cron["auth_user"]} if cron.get("auth_user") else {}),
    )
    submit_run(ctx, run)
    return run


def _instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
