"""Server-sent events over the run's event log, in the peer's framing (CRLF, `event`/`data`/`id`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from stepgraph import serde
from stepgraph.engine import END, Context, Event
from stepgraph.vocabulary import INFLIGHT

HEARTBEAT_SECONDS = 5.0  # default; Settings.heartbeat_seconds (STEPGRAPH_HEARTBEAT_SECONDS) wins


def frame(event: str, data: Any, event_id: int | str | None = None) -> bytes:
    out = b"event: " + event.encode() + b"\r\ndata: " + serde.dumps(data) + b"\r\n"
    if event_id is not None:
        out += b"id: " + str(event_id).encode() + b"\r\n"
    return out + b"\r\n"


HEARTBEAT = b": heartbeat\r\n\r\n"


async def tail(ctx: Context, run: dict[str, Any], after: int = 0) -> AsyncIterator[Event | None]:
    """The run's events after `after` until its end marker; None after every heartbeat interval
    of silence (the caller sends an SSE comment, which also reveals a client that went away).

    A run that ended without a readable end marker (its log expired, or a rollback deleted it)
    would leave a reader waiting for ever: at each heartbeat the run's status is checked too."""
    heartbeat = getattr(ctx.settings, "heartbeat_seconds", HEARTBEAT_SECONDS)
    run_id, last = run["run_id"], after
    with ctx.notifier.subscribe(run_id) as subscription:
        quiet_since = time.monotonic()
        while True:
            subscription.clear()
            events = await run_in_threadpool(ctx.events.read, run_id, last)
            for event in events:
                last = event.seq
                if event.event == END:
                    return
                yield event
            if events:
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since >= heartbeat:
                if not await run_in_threadpool(_inflight, ctx, run):
                    for event in await run_in_threadpool(ctx.events.read, run_id, last):  # what is left
                        if event.event == END:
                            return
                        yield event
                    return
                quiet_since = time.monotonic()
                yield None
            await subscription.wait(heartbeat)


def _inflight(ctx: Context, run: dict[str, Any]) -> bool:
    current = ctx.runs.get(run["thread_id"], run["run_id"])
    return current is not None and current["status"] in INFLIGHT


def wanted(event: str, modes: set[str] | None) -> bool:
    if modes is None:
        return True
    base = event.split("|", 1)[0]
    mode = base.split("/", 1)[0]  # messages/partial, messages/complete, messages/metadata
    return mode in modes or (mode == "messages" and "messages-tuple" in modes) or base == "error"
