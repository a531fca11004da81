"""Thread-level streams: every run of a thread, one after another, read from their event logs.

`GET /threads/{t}/stream` sends them in the classic SSE framing; the thread-centric protocol
(`api/protocol.py`) sends the same logs as protocol events. Both stay open across runs until
the client goes away, sending a heartbeat comment in silences.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from stepgraph import serde
from stepgraph.api.common import ctx_of
from stepgraph.api.sse import HEARTBEAT, HEARTBEAT_SECONDS, frame
from stepgraph.api.threads import aauthorized_thread
from stepgraph.engine import END, END_SEQ, Context, Event, get_thread_state, thread_graph
from stepgraph.vocabulary import INFLIGHT, RunStatus

router = APIRouter(tags=["threads"])

# How often a thread with no run in flight is looked at for a new run.
_IDLE_POLL_SECONDS = 0.1
# A run over without an end marker in its log (the log expired) is closed after this long.
_MISSING_END_SECONDS = 2.0

Start = Callable[[dict[str, Any], bool], "int | None"]


async def tail_thread(
    ctx: Context, thread_id: str, start: Start
) -> AsyncIterator[tuple[dict[str, Any], Event, bool] | None]:
    """(run, event, first) for every event of the thread's runs, oldest run first, each run
    ending with its END event; None after each heartbeat interval of silence. Ends when the
    thread is deleted. `start(run, at_connect)` is asked once per run: the log seq to read it
    after, or None to skip it; `at_connect` tells the runs that existed when the tail began.
    `first` marks a run's first event read here."""
    heartbeat = getattr(ctx.settings, "heartbeat_seconds", HEARTBEAT_SECONDS)
    positions: dict[str, int] = {}  # the last seq read of each run followed
    ended_at: dict[str, float] = {}
    done: set[str] = set()
    at_connect = True
    quiet_since = time.monotonic()
    followed: str | None = None
    with contextlib.ExitStack() as stack:
        subscription = None
        while True:
            if subscription is not None:
                subscription.clear()
            runs = list(reversed(await run_in_threadpool(ctx.runs.list, thread_id)))  # oldest first
            progressed, active = False, None
            for run in runs:
                run_id = run["run_id"]
                if run_id not in positions and run_id not in done:
                    begin = await run_in_threadpool(start, run, at_connect)
                    if begin is None:
                        done.add(run_id)
                    else:
                        positions[run_id] = begin
                if run_id in done:
                    continue
                after = positions[run_id]
                events = await run_in_threadpool(ctx.events.read, run_id, after)
                if (
                    not events
                    and run["status"] not in INFLIGHT
                    # Its end marker follows its status change; a log that expired has none.
                    and time.monotonic() - ended_at.setdefault(run_id, time.monotonic()) > _MISSING_END_SECONDS
                ):
                    events = [Event(END_SEQ, END, {"status": run["status"]})]
                for event in events:
                    yield run, event, after == 0 and event is events[0]
                    positions[run_id] = event.seq
                    if event.event == END:
                        done.add(run_id)
                        break
                progressed = progressed or bool(events)
                if run_id not in done and active is None:
                    active = run_id
            at_connect = False
            if active != followed:  # wake on the followed run's writes; look again once subscribed
                stack.close()
                subscription = stack.enter_context(ctx.notifier.subscribe(active)) if active else None
                followed = active
                continue
            if progressed:
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since >= heartbeat:
                if await run_in_threadpool(ctx.threads.get, thread_id) is None:
                    return
                quiet_since = time.monotonic()
                yield None
            if subscription is not None:
                await subscription.wait(min(heartbeat, 0.5))
            else:
                await asyncio.sleep(_IDLE_POLL_SECONDS)


def _classic_start(ctx: Context, last_event_id: str | None) -> Start:
    """Last-Event-ID `<run_id>:<seq>` resumes after that event; without one, runs in flight
    are joined live and later runs are sent whole."""
    if last_event_id is not None:
        cursor_run, _, cursor_seq = last_event_id.partition(":")
        try:
            seq = int(cursor_seq)
        except ValueError:
            raise HTTPException(422, "Last-Event-ID must be an event id sent by this server") from None

        def after_cursor(run: dict[str, Any], at_connect: bool) -> int | None:
            if run["run_id"] < cursor_run or (run["run_id"] == cursor_run and seq >= END_SEQ):
                return None
            return 0 if run["run_id"] > cursor_run else seq

        return after_cursor

    def live(run: dict[str, Any], at_connect: bool) -> int | None:
        if not at_connect:
            return 0
        return ctx.events.last_seq(run["run_id"]) if run["status"] in INFLIGHT else None

    return live


def _parse_thread_modes(values: list[str] | None) -> set[str]:
    modes = {m.strip() for v in values or () for m in v.split(",") if m.strip()} or {"run_modes"}
    unknown = modes - {"run_modes", "lifecycle", "state_update"}
    if unknown:
        raise HTTPException(422, f"Unknown stream_modes: {', '.join(sorted(unknown))}")
    return modes


def _state_values(ctx: Context, thread_id: str) -> Any:
    thread = ctx.threads.get(thread_id)
    graph_id = thread_graph(ctx, thread) if thread else None
    if graph_id is None:
        return None
    return serde.to_jsonable(get_thread_state(ctx, thread_id, graph_id).values)


@router.get("/threads/{thread_id}/stream")
async def stream_thread(
    thread_id: str,
    request: Request,
    stream_modes: list[str] | None = Query(None),
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
    """Every run of the thread: `run_modes` sends each run's own events (after a `metadata`
    event naming the run), `lifecycle` a `lifecycle` event as each run starts and ends,
    `state_update` the thread's values as each run ends. Event ids are `<run_id>:<seq>`."""
    ctx = ctx_of(request)
    await aauthorized_thread(request, thread_id)
    modes = _parse_thread_modes(stream_modes)
    start = _classic_start(ctx, last_event_id)

    async def body() -> AsyncIterator[bytes]:
        async for item in tail_thread(ctx, thread_id, start):
            if item is None:
                yield HEARTBEAT
                continue
            run, event, first = item
            run_id = run["run_id"]
            if first and "run_modes" in modes:
                yield frame("metadata", {"run_id": run_id, "attempt": 1})
            if first and "lifecycle" in modes:
                yield frame("lifecycle", {"run_id": run_id, "thread_id": thread_id, "status": RunStatus.RUNNING})
            if event.event != END:
                if "run_modes" in modes:
                    yield frame(event.event, event.data, f"{run_id}:{event.seq}")
                continue
            status = (event.data or {}).get("status") or run["status"]
            end_id = f"{run_id}:{END_SEQ}"
            if "lifecycle" in modes:
                yield frame("lifecycle", {"run_id": run_id, "thread_id": thread_id, "status": status}, end_id)
            if "state_update" in modes:
                values = await run_in_threadpool(_state_values, ctx, thread_id)
                yield frame("state_update", {"run_id": run_id, "values": values}, end_id)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream; charset=utf-8", headers=headers)
