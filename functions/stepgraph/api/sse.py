"""Server-sent events over the run's event log, in the peer's framing (CRLF, `event`/`data`/`id`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from stepgraph import serde
from stepgraph.engine.context import Context
from stepgraph.storage.events import END, Event

HEARTBEAT_SECONDS = 5.0  # default; Settings.heartbeat_seconds (STEPGRAPH_HEARTBEAT_SECONDS) wins


def frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    out = b"event: " + event.encode() + b"\r\ndata: " + serde.dumps(data) + b"\r\n"
    if event_id is not None:
        out += b"id: " + str(event_id).encode() + b"\r\n"
    return out + b"\r\n"


HEARTBEAT = b": heartbeat\r\n\r\n"


async def tail(ctx: Context, run_id: str, after: int = 0) -> AsyncIterator[Event | None]:
    """Events after `after` until the run's end marker; None after every heartbeat interval of
    silence (the caller sends an SSE comment, which also reveals a client that went away)."""
    heartbeat = getattr(ctx.settings, "heartbeat_seconds", HEARTBEAT_SECONDS)
    last = after
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
                quiet_since = time.monotonic()
                yield None
            await subscription.wait(heartbeat)


def wanted(event: str, modes: set[str] | None) -> bool:
    if modes is None:
        return True
    base = event.split("|", 1)[0]
    mode = base.split("/", 1)[0]  # messages/partial, messages/complete, messages/metadata
    return mode in modes or (mode == "messages" and "messages-tuple" in modes) or base == "error"
