"""The thread-centric streaming protocol over HTTP, what `client.threads.stream(...)` uses:
`POST /threads/{t}/commands` (run.start, input.respond, state.*, agent.getTree) and
`POST /threads/{t}/stream/events` (a filtered SSE of protocol events across the thread's runs).
The WebSocket transport is not served.

Commands that start a run ask `threads.create_run` (in `create_run`); the others, and the event
stream, `threads.read`: a thread the user's filter hides answers as a thread with no run."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from langchain_core.runnables import RunnableConfig
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from stepgraph import serde
from stepgraph.api.auth import OPEN, Access, access_of
from stepgraph.api.common import check_uuid, ctx_of
from stepgraph.api.errors import CommandError
from stepgraph.api.runs import create_run
from stepgraph.api.schemas import EventStreamRequest, ProtocolCommand, RunCreate
from stepgraph.api.sse import HEARTBEAT
from stepgraph.api.thread_stream import Start, tail_thread
from stepgraph.api.threads import aauthorized_thread
from stepgraph.engine import (
    CHANNELS,
    RUN_STREAM_MODES,
    Context,
    RunTranslator,
    bound_graph,
    get_thread_state,
    matches,
    matches_filter,
    run_position,
    state_config,
    thread_graph,
    thread_ms,
    thread_seq,
)
from stepgraph.vocabulary import INFLIGHT, RunStatus

router = APIRouter(tags=["threads"])

# A finished run started through the protocol is replayed to a stream opened this soon after
# it ended: the client opens its lifecycle stream only once run.start has answered.
_RECENT_RUN_SECONDS = 10.0


def _protocol_run(run: dict[str, Any]) -> bool:
    kwargs = run.get("kwargs") or {}
    return kwargs.get("stream_mode") == RUN_STREAM_MODES and bool(kwargs.get("stream_subgraphs"))


def _start_run(ctx: Context, thread_id: str, fields: dict[str, Any], access: Access = OPEN) -> dict[str, Any]:
    # Validated as data: `fields` are the client's, and RUN_STREAM_MODES a plain list of names.
    fields = {**fields, "stream_mode": RUN_STREAM_MODES, "stream_subgraphs": True, "if_not_exists": "create"}
    try:
        body = RunCreate.model_validate(fields)
    except ValidationError as exc:
        raise CommandError("invalid_argument", str(exc)) from None
    try:
        return create_run(ctx, thread_id, body, access=access)
    except HTTPException as exc:
        if exc.status_code == 403:  # the user's authorization refused it: an HTTP answer
            raise
        raise CommandError("invalid_argument", str(exc.detail)) from None


def _applied_through(ctx: Context, run: dict[str, Any]) -> dict[str, int]:
    thread = ctx.threads.get(run["thread_id"]) or {}
    return {"applied_through_seq": max(0, thread_seq(thread_ms(thread), run["run_id"], 0) - 1)}


def _run_start(
    ctx: Context, thread_id: str, params: dict[str, Any], access: Access
) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(params.get("assistant_id"), str):
        raise CommandError("invalid_argument", "run.start needs an assistant_id")
    fields = {k: params[k] for k in ("assistant_id", "input", "config", "metadata") if params.get(k) is not None}
    run = _start_run(ctx, thread_id, fields, access)
    return {"run_id": run["run_id"]}, _applied_through(ctx, run)


def _thread_and_graph(ctx: Context, thread_id: str) -> tuple[dict[str, Any], str]:
    thread = ctx.threads.get(thread_id)
    graph_id = thread_graph(ctx, thread) if thread else None
    if thread is None or graph_id is None:
        raise CommandError("no_such_run", "The thread has no run yet")
    return thread, graph_id


def _input_respond(
    ctx: Context, thread_id: str, params: dict[str, Any], access: Access
) -> tuple[dict[str, Any], dict[str, Any]]:
    entries = params.get("responses")
    if entries is None:
        entries = [params]
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(e, dict) and isinstance(e.get("interrupt_id"), str) and "response" in e for e in entries)
    ):
        raise CommandError("invalid_argument", "input.respond needs interrupt_id and response")
    thread, graph_id = _thread_and_graph(ctx, thread_id)
    pending = {i.id for i in get_thread_state(ctx, thread_id, graph_id).interrupts}
    unknown = [e["interrupt_id"] for e in entries if e["interrupt_id"] not in pending]
    if unknown:
        raise CommandError("no_such_interrupt", f"No pending interrupt {', '.join(unknown)} on this thread")
    command = {"resume": {e["interrupt_id"]: e["response"] for e in entries}}
    for key in ("update", "goto"):
        if params.get(key) is not None:
            command[key] = params[key]
    assistant_id = (thread.get("metadata") or {}).get("assistant_id") or graph_id
    fields = {"assistant_id": assistant_id, "command": command}
    fields.update({k: params[k] for k in ("config", "metadata") if params.get(k) is not None})
    run = _start_run(ctx, thread_id, fields, access)
    return {}, _applied_through(ctx, run)


def _state_get(
    ctx: Context, thread_id: str, params: dict[str, Any], access: Access
) -> tuple[dict[str, Any], dict[str, Any]]:
    _, graph_id = _thread_and_graph(ctx, thread_id)
    snapshot = get_thread_state(ctx, thread_id, graph_id)
    values = serde.to_jsonable(snapshot.values) or {}
    keys = params.get("keys")
    if isinstance(keys, list) and isinstance(values, dict):
        values = {k: v for k, v in values.items() if k in keys}
    configurable = (snapshot.config or {}).get("configurable", {})
    result: dict[str, Any] = {"values": values}
    if configurable.get("checkpoint_id"):
        result["checkpoint"] = {"id": configurable["checkpoint_id"], "ns": configurable.get("checkpoint_ns", "")}
    return result, {}


def _list_checkpoints(
    ctx: Context, thread_id: str, params: dict[str, Any], access: Access
) -> tuple[dict[str, Any], dict[str, Any]]:
    _, graph_id = _thread_and_graph(ctx, thread_id)
    limit = params.get("limit") if isinstance(params.get("limit"), int) and params["limit"] > 0 else 10
    before = params.get("before")
    before_config: RunnableConfig | None = (
        {"configurable": {"thread_id": thread_id, "checkpoint_id": before}} if isinstance(before, str) else None
    )
    checkpoints = []
    for s in bound_graph(ctx, graph_id).get_state_history(state_config(thread_id), before=before_config, limit=limit):
        metadata = serde.to_jsonable(s.metadata or {})
        summary = {
            "id": s.config["configurable"]["checkpoint_id"],
            "timestamp": s.created_at,
            "step": metadata.get("step", -1),
            "metadata": metadata,
        }
        writes = metadata.get("writes")
        if isinstance(writes, dict) and len(writes) == 1:
            summary["node_name"] = next(iter(writes))
        checkpoints.append(summary)
    return {"checkpoints": checkpoints}, {}


def _state_fork(
    ctx: Context, thread_id: str, params: dict[str, Any], access: Access
) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(params.get("checkpoint_id"), str):
        raise CommandError("invalid_argument", "state.fork needs a checkpoint_id")
    thread, graph_id = _thread_and_graph(ctx, thread_id)
    found = get_thread_state(ctx, thread_id, graph_id, {"checkpoint_id": params["checkpoint_id"]})
    if found.created_at is None:
        raise CommandError("no_such_checkpoint", f"No checkpoint {params['checkpoint_id']} on this thread")
    fields = {
        "assistant_id": (thread.get("metadata") or {}).get("assistant_id") or graph_id,
        "checkpoint_id": params["checkpoint_id"],
        **{k: params[k] for k in ("input", "config") if params.get(k) is not None},
    }
    run = _start_run(ctx, thread_id, fields, access)
    return {"run_id": run["run_id"], "thread_id": thread_id}, _applied_through(ctx, run)


def _agent_tree(
    ctx: Context, thread_id: str, params: dict[str, Any], access: Access
) -> tuple[dict[str, Any], dict[str, Any]]:
    _, graph_id = _thread_and_graph(ctx, thread_id)
    runs = ctx.runs.list(thread_id)
    if isinstance(params.get("run_id"), str):
        runs = [r for r in runs if r["run_id"] == params["run_id"]]
        if not runs:
            raise CommandError("no_such_run", f"No run {params['run_id']} on this thread")
    status = _agent_status(ctx, runs[0], graph_id) if runs else "started"
    children = [
        {"namespace": [ns], "status": status, "graph_name": ns} for ns, _ in ctx.graphs.get(graph_id).get_subgraphs()
    ]
    return {"tree": {"namespace": [], "status": status, "graph_name": graph_id, "children": children}}, {}


def _agent_status(ctx: Context, run: dict[str, Any], graph_id: str) -> str:
    if run["status"] in INFLIGHT:
        return "running"
    if run["status"] == RunStatus.SUCCESS:
        return "interrupted" if get_thread_state(ctx, run["thread_id"], graph_id).interrupts else "completed"
    return "failed"


_COMMANDS = {
    "run.start": _run_start,
    "input.respond": _input_respond,
    "state.get": _state_get,
    "state.listCheckpoints": _list_checkpoints,
    "state.fork": _state_fork,
    "agent.getTree": _agent_tree,
}
# Subscriptions belong to the WebSocket transport, which is not served: over HTTP each event
# stream carries its own filter.
_NOT_SUPPORTED = ("subscription.subscribe", "subscription.unsubscribe", "subscription.reconnect", "input.inject")


@router.post("/threads/{thread_id}/commands")
async def run_command(thread_id: str, body: ProtocolCommand, request: Request) -> JSONResponse:
    """One protocol command. Protocol failures come back in the protocol's error envelope."""
    ctx = ctx_of(request)
    check_uuid(thread_id, "thread")
    access = access_of(request)
    handler = _COMMANDS.get(body.method)
    try:
        if handler is None:
            code = "not_supported" if body.method in _NOT_SUPPORTED else "unknown_command"
            raise CommandError(code, f"Command {body.method!r} is not supported by this server")
        if body.method != "run.start":  # reads the thread (and its interrupts) before anything
            await _readable(ctx, thread_id, access)
        result, meta = await run_in_threadpool(handler, ctx, thread_id, body.params, access)
    except CommandError as exc:
        return JSONResponse({"type": "error", "id": body.id, "error": exc.code, "message": exc.message})
    reply: dict[str, Any] = {"type": "success", "id": body.id, "result": result}
    if meta:
        reply["meta"] = meta
    return JSONResponse(serde.to_jsonable(reply))


async def _readable(ctx: Context, thread_id: str, access: Access) -> None:
    """`threads.read` of the thread: one the user's filter hides answers as a missing one."""
    filters = await access.aauthorize("threads", "read", {"thread_id": thread_id})
    if filters:
        thread = await run_in_threadpool(ctx.threads.get, thread_id)
        if thread is not None and not matches_filter(thread.get("metadata"), filters):
            raise CommandError("no_such_run", "The thread has no run yet")


def _stream_start(ctx: Context, base_ms: int, since: int | None) -> Start:
    """Where each run's log is read from. With `since`, after that position; without, runs in
    flight from their start (and every later run), plus a protocol run that just ended."""

    def start(run: dict[str, Any], at_connect: bool) -> int | None:
        if since is not None:
            return run_position(base_ms, since, run["run_id"])
        if not at_connect or run["status"] in INFLIGHT:
            return 0
        latest = ctx.runs.list(run["thread_id"])[:1]
        recent = time.time() - _timestamp(run.get("updated_at")) < _RECENT_RUN_SECONDS
        return 0 if latest and latest[0]["run_id"] == run["run_id"] and _protocol_run(run) and recent else None

    return start


def _timestamp(value: Any) -> float:
    try:
        return datetime.fromisoformat(value).timestamp()
    except (TypeError, ValueError):
        return 0.0


@router.post("/threads/{thread_id}/stream/events")
async def stream_events(thread_id: str, body: EventStreamRequest, request: Request) -> StreamingResponse:
    ctx = ctx_of(request)
    thread = await aauthorized_thread(request, thread_id)
    unknown = [c for c in body.channels if c not in CHANNELS and not c.startswith("custom:")]
    if unknown:
        raise HTTPException(422, f"Unknown channels: {', '.join(unknown)}")
    channels, base_ms = set(body.channels), thread_ms(thread)
    start = _stream_start(ctx, base_ms, body.since)

    async def events() -> AsyncIterator[bytes]:
        translators: dict[str, RunTranslator] = {}
        async for item in tail_thread(ctx, thread_id, start):
            if item is None:
                yield HEARTBEAT
                continue
            run, event, first = item
            translator = translators.get(run["run_id"])
            if translator is None:
                translator = translators[run["run_id"]] = RunTranslator(run, base_ms)
            out = translator.started() if first else []
            out.extend(translator.translate(event))
            for message in out:
                if (body.since is None or message["seq"] > body.since) and matches(
                    message, channels, body.namespaces, body.depth
                ):
                    yield _frame(message)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream; charset=utf-8", headers=headers)


def _frame(message: dict[str, Any]) -> bytes:
    method: str = message["method"]
    return (
        b"event: "
        + method.encode()
        + b"\r\ndata: "
        + serde.dumps(message)
        + b"\r\nid: "
        + str(message["seq"]).encode()
        + b"\r\n\r\n"
    )
