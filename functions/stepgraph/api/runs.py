"""Runs: create (background / wait / stream), read, join and cancel; stateless twins under /runs.

Runs belong to their thread, as on the Agent Server: reading, joining, streaming or cancelling
one asks the thread's authorization (`threads.read`, `update`, `delete`), creating one
`threads.create_run`, whose handler may stamp the run's metadata and filter the thread."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, get_args

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from stepgraph import serde
from stepgraph.api.auth import OPEN, Access, access_of
from stepgraph.api.common import check_uuid, ctx_of, resolve_assistant
from stepgraph.api.errors import not_found
from stepgraph.api.schemas import RunCreate, RunsCancel, StreamMode
from stepgraph.api.sse import HEARTBEAT, frame, tail, wanted
from stepgraph.api.threads import aauthorized_thread, authorized_thread
from stepgraph.engine import (
    COST_KEY,
    END_SEQ,
    Conflict,
    Context,
    RunsMissing,
    ThreadMissing,
    base_run,
    cancel_run,
    cancel_runs,
    check_document_size,
    check_run_webhook,
    delete_thread,
    get_thread_state,
    matches_filter,
    new_thread,
    submit_run,
)
from stepgraph.vocabulary import INFLIGHT, RunStatus

router = APIRouter(tags=["runs"])

_REJECTED = "Thread is already running a task. Wait for it to finish or choose a different multitask strategy."
_KWARGS = (
    "input",
    "command",
    "config",
    "context",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "interrupt_before",
    "interrupt_after",
    "checkpoint",
    "checkpoint_id",
    "durability",
    "webhook",
    "on_disconnect",
    "feedback_keys",
    "interrupt_deadline_seconds",
    "on_interrupt_deadline",
)


def run_to_wire(run: dict[str, Any]) -> dict[str, Any]:
    wire = {
        k: run.get(k)
        for k in (
            "run_id",
            "thread_id",
            "assistant_id",
            "created_at",
            "updated_at",
            "status",
            "metadata",
            "kwargs",
            "multitask_strategy",
            "langsmith_session_name",
        )
    }
    usage = dict(run.get("aws_usage") or {})
    if usage:
        # What the run used on AWS so far and its estimated price (engine/usage.py).
        cost = usage.pop(COST_KEY, None)
        wire["metadata"] = {**(wire["metadata"] or {}), "aws_usage": usage, "aws_cost_usd": cost}
    return wire


def checked_assistant(ctx: Context, body: RunCreate, *, stateless: bool) -> dict[str, Any]:
    """The assistant a run body names, once the body passes the peer's checks (400 otherwise)."""
    if body.config and body.config.get("configurable") and body.context:
        raise HTTPException(400, "Cannot specify both configurable and context. Prefer setting context alone.")
    if stateless and body.command and body.command.resume is not None:
        raise HTTPException(400, "You must provide a thread_id when resuming.")
    return resolve_assistant(ctx, body.assistant_id)


@dataclass(frozen=True)
class _RunDraft:
    """A run checked and built, nothing of it written yet."""

    run: dict[str, Any]
    filters: dict[str, Any] | None
    metadata: dict[str, Any]
    assistant: dict[str, Any]


def _draft_run(ctx: Context, thread_id: str, body: RunCreate, *, stateless: bool, access: Access) -> _RunDraft:
    """The run `body` asks for, authorized and checked (its size too), writing nothing."""
    kwargs = {k: v for k, v in body.model_dump(include=set(_KWARGS), exclude_none=True).items()}
    checkpoint_during = (body.model_extra or {}).get("checkpoint_during")
    if "durability" not in kwargs and isinstance(checkpoint_during, bool):
        # The deprecated boolean form, as the peer maps it.
        kwargs["durability"] = "async" if checkpoint_during else "exit"
    kwargs.setdefault("stream_mode", ["values"])
    if stateless:
        kwargs["on_completion"] = body.on_completion
    value: dict[str, Any] = {
        "thread_id": thread_id,
        "assistant_id": body.assistant_id,
        "run_id": None,
        "status": RunStatus.PENDING,
        "metadata": dict(body.metadata or {}),
        "prevent_insert_if_inflight": body.multitask_strategy == "reject",
        "multitask_strategy": body.multitask_strategy,
        "if_not_exists": body.if_not_exists,
        "after_seconds": body.after_seconds or 0,
        "kwargs": kwargs,
    }
    filters = access.authorize("threads", "create_run", value)
    if kwargs.get("webhook"):
        check_run_webhook(ctx, kwargs["webhook"])  # refused: 422, nothing written
    metadata = value.get("metadata") or {}
    assistant = checked_assistant(ctx, body, stateless=stateless)
    run = base_run(
        thread_id,
        assistant,
        kwargs,
        metadata=metadata,
        multitask_strategy=body.multitask_strategy,
        assistant_config=assistant.get("config") or {},
        assistant_context=assistant.get("context") or {},
        # Who created it: every Step invocation gives the graph this user.
        **({"auth_user": access.fields} if access.fields else {}),
    )
    # Refuse a run too large to store before anything is written (no thread created for it).
    check_document_size(run)
    return _RunDraft(run, filters, metadata, assistant)


def create_run(
    ctx: Context,
    thread_id: str,
    body: RunCreate,
    *,
    stateless: bool = False,
    access: Access = OPEN,
    draft: _RunDraft | None = None,
) -> dict[str, Any]:
    """Validate, persist as pending and ring the thread's doorbell. Runs in a worker thread.
    `draft`: what `_draft_run` made of the same arguments already."""
    draft = draft or _draft_run(ctx, thread_id, body, stateless=stateless, access=access)
    run, filters, metadata, assistant = draft.run, draft.filters, draft.metadata, draft.assistant
    thread = ctx.threads.get(thread_id)
    stamp = {"graph_id": assistant["graph_id"], "assistant_id": assistant["assistant_id"]}
    if thread is None:
        if not (stateless or body.if_not_exists == "create"):
            raise HTTPException(404, "Thread or assistant not found.")
        created = new_thread(ctx, thread_id, {**metadata, **stamp})
        # Created here, it is the user's; created by someone else meanwhile, it must pass.
        thread = created or ctx.threads.get(thread_id)
        if created is None and (thread is None or not matches_filter(thread.get("metadata"), filters)):
            raise HTTPException(404, "Thread or assistant not found.")
    elif not matches_filter(thread.get("metadata"), filters):
        raise HTTPException(404, "Thread or assistant not found.")
    elif (thread.get("metadata") or {}).get("graph_id") != assistant["graph_id"]:
        thread["metadata"] = {**(thread.get("metadata") or {}), **stamp}
        ctx.threads.update_doc(thread_id, thread)
    try:
        # reject is decided by the insert's own conditional write on the thread: nothing is
        # inserted when the thread holds or queues a run.
        submit_run(ctx, run, after_seconds=body.after_seconds or 0)
    except Conflict:
        raise HTTPException(409, _REJECTED) from None
    except ThreadMissing:
        raise HTTPException(404, "Thread or assistant not found.") from None
    return run


def _headers(run: dict[str, Any], suffix: str) -> dict[str, str]:
    base = f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    return {"Location": base + suffix, "Content-Location": base}


async def wait_for_end(ctx: Context, run: dict[str, Any]) -> None:
    # Waiting needs only the end marker, which sits after every event: read nothing else.
    async for _ in tail(ctx, run, END_SEQ - 1):
        pass


def run_output(ctx: Context, run: dict[str, Any]) -> Any:
    """The wait/join body: final values (any JSON: a graph's state need not be an object), plus
    __interrupt__ or __error__ as the peer sends them."""
    current = ctx.runs.get(run["thread_id"], run["run_id"]) or run
    if current.get("status") == RunStatus.ERROR:
        return {"__error__": current.get("error") or {"error": "Error", "message": "run failed"}}
    snapshot = get_thread_state(ctx, run["thread_id"], run["graph_id"])
    values = serde.to_jsonable(snapshot.values) if snapshot.values is not None else {}
    if not isinstance(values, dict):
        return values
    if snapshot.interrupts:
        values["__interrupt__"] = serde.to_jsonable(list(snapshot.interrupts))
    return values


async def _cancel_quietly(ctx: Context, run: dict[str, Any]) -> None:
    await run_in_threadpool(cancel_run, ctx, run, "interrupt")


def _cleanup_stateless(ctx: Context, run: dict[str, Any]) -> None:
    if run.get("kwargs", {}).get("on_completion") == "delete":
        delete_thread(ctx, run["thread_id"])


async def _wait_response(ctx: Context, run: dict[str, Any], on_disconnect: str) -> Response:
    try:
        await wait_for_end(ctx, run)
    except asyncio.CancelledError:
        if on_disconnect == "cancel":
            await asyncio.shield(_cancel_quietly(ctx, run))
        raise
    body = await run_in_threadpool(run_output, ctx, run)
    if "on_completion" in run.get("kwargs", {}):
        await run_in_threadpool(_cleanup_stateless, ctx, run)
    return Response(serde.dumps(body), media_type="application/json", headers=_headers(run, "/join"))


def _stream_response(
    ctx: Context,
    run: dict[str, Any],
    *,
    after: int = 0,
    modes: set[str] | None = None,
    on_disconnect: str = "continue",
) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            yield frame("metadata", {"run_id": run["run_id"], "attempt": 1})
            async for event in tail(ctx, run, after):
                if event is None:
                    yield HEARTBEAT
                elif wanted(event.event, modes):
                    yield frame(event.event, event.data, event.seq)
            finished = True
        finally:
            if not finished and on_disconnect == "cancel":
                await asyncio.shield(_cancel_quietly(ctx, run))
            elif finished and "on_completion" in run.get("kwargs", {}):
                await run_in_threadpool(_cleanup_stateless, ctx, run)

    headers = {**_headers(run, "/stream"), "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream; charset=utf-8", headers=headers)


# ---------------------------------------------------------------- stateful
@router.post("/threads/{thread_id}/runs")
async def create_background_run(thread_id: str, body: RunCreate, request: Request) -> Response:
    ctx = ctx_of(request)
    run = await run_in_threadpool(create_run, ctx, check_uuid(thread_id, "thread"), body, access=access_of(request))
    return Response(serde.dumps(run_to_wire(run)), media_type="application/json", headers=_headers(run, ""))


@router.post("/threads/{thread_id}/runs/wait")
async def create_and_wait(thread_id: str, body: RunCreate, request: Request) -> Response:
    ctx = ctx_of(request)
    run = await run_in_threadpool(create_run, ctx, check_uuid(thread_id, "thread"), body, access=access_of(request))
    return await _wait_response(ctx, run, body.on_disconnect)


@router.post("/threads/{thread_id}/runs/stream")
async def create_and_stream(thread_id: str, body: RunCreate, request: Request) -> StreamingResponse:
    ctx = ctx_of(request)
    run = await run_in_threadpool(create_run, ctx, check_uuid(thread_id, "thread"), body, access=access_of(request))
    return _stream_response(ctx, run, on_disconnect=body.on_disconnect)


@router.get("/threads/{thread_id}/runs")
def list_runs(
    thread_id: str,
    request: Request,
    limit: int = Query(10, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    status: str | None = None,
) -> list[dict[str, Any]]:
    ctx = ctx_of(request)
    authorized_thread(request, thread_id)
    runs = [r for r in ctx.runs.list(thread_id) if status is None or r["status"] == status]
    return [run_to_wire(r) for r in runs[offset : offset + limit]]


def _load_run(ctx: Context, thread_id: str, run_id: str, filters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run, if it exists and its thread's metadata passes `filters` (the user's): a run
    of a thread the filter hides is a 404, as a missing one."""
    if filters:
        thread = ctx.threads.get(thread_id)
        if thread is None or not matches_filter(thread.get("metadata"), filters):
            raise not_found("Run")
    run = ctx.runs.get(thread_id, run_id)
    if run is None:
        raise not_found("Run")
    return run


def _authorized_run(request: Request, thread_id: str, run_id: str, verb: str = "read", **value: Any) -> dict[str, Any]:
    """The run, once the user may `verb` its thread (`threads.<verb>`). In a worker thread."""
    value = {"thread_id": check_uuid(thread_id, "thread"), "run_id": check_uuid(run_id, "run"), **value}
    filters = access_of(request).authorize("threads", verb, value)
    return _load_run(ctx_of(request), thread_id, run_id, filters)


async def _aauthorized_run(request: Request, thread_id: str, run_id: str) -> dict[str, Any]:
    """`_authorized_run` of a read, on the event loop."""
    value = {"thread_id": check_uuid(thread_id, "thread"), "run_id": check_uuid(run_id, "run")}
    filters = await access_of(request).aauthorize("threads", "read", value)
    return await run_in_threadpool(_load_run, ctx_of(request), thread_id, run_id, filters)


@router.get("/threads/{thread_id}/runs/{run_id}")
def get_run(thread_id: str, run_id: str, request: Request) -> dict[str, Any]:
    return run_to_wire(_authorized_run(request, thread_id, run_id))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
def delete_run(thread_id: str, run_id: str, request: Request) -> Response:
    ctx = ctx_of(request)
    run = _authorized_run(request, thread_id, run_id, "delete")
    if run["status"] in INFLIGHT:
        raise HTTPException(409, "Run is still in flight: cancel it first.")
    ctx.checkpointer.delete_for_runs([run_id], thread_id=thread_id)
    ctx.events.delete_run(run_id)
    ctx.runs.delete(thread_id, run_id)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(thread_id: str, run_id: str, request: Request, cancel_on_disconnect: bool = False) -> Response:
    ctx = ctx_of(request)
    run = await _aauthorized_run(request, thread_id, run_id)
    return await _wait_response(ctx, run, "cancel" if cancel_on_disconnect else "continue")


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_stream(
    thread_id: str,
    run_id: str,
    request: Request,
    stream_mode: list[str] | None = Query(None),
    cancel_on_disconnect: bool = False,
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
    ctx = ctx_of(request)
    run = await _aauthorized_run(request, thread_id, run_id)
    modes = _parse_modes(stream_mode)
    if last_event_id is not None:
        try:
            after = int(last_event_id)
        except ValueError:
            raise HTTPException(422, "Last-Event-ID must be an event id sent by this server") from None
    else:
        # Like the peer, a join without Last-Event-ID gets live events only.
        after = await run_in_threadpool(ctx.events.last_seq, run_id)
    return _stream_response(
        ctx, run, after=after, modes=modes, on_disconnect="cancel" if cancel_on_disconnect else "continue"
    )


def _parse_modes(stream_mode: list[str] | None) -> set[str] | None:
    """`?stream_mode=a&stream_mode=b` (what the SDK sends for a list), a JSON list, or one mode."""
    modes: set[str] = set()
    for value in stream_mode or ():
        if value.startswith("["):
            try:
                listed = json.loads(value)
            except ValueError:
                listed = None
            if not isinstance(listed, list) or not all(isinstance(m, str) for m in listed):
                raise HTTPException(422, "stream_mode must be a mode or a JSON list of modes")
            modes.update(listed)
        elif value:
            modes.add(value)
    unknown = modes - set(get_args(StreamMode))
    if unknown:
        raise HTTPException(422, f"Unknown stream_mode: {', '.join(sorted(unknown))}")
    return modes or None


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel(
    thread_id: str, run_id: str, request: Request, wait: bool = False, action: str = "interrupt"
) -> Response:
    ctx = ctx_of(request)
    if action not in ("interrupt", "rollback"):
        raise HTTPException(422, "action must be 'interrupt' or 'rollback'")
    run = await run_in_threadpool(_authorized_run, request, thread_id, run_id, "update", action=action)
    await run_in_threadpool(cancel_run, ctx, run, action)
    if wait:
        if action == "rollback":
            return Response(status_code=204)
        return await _wait_response(ctx, run, "continue")
    return Response(status_code=202)


# ---------------------------------------------------------------- stateless
def _stateless_thread() -> str:
    return str(uuid.uuid4())


@router.post("/runs")
async def create_stateless(body: RunCreate, request: Request) -> Response:
    ctx = ctx_of(request)
    run = await run_in_threadpool(
        create_run,
        ctx,
        _stateless_thread(),
        body.model_copy(update={"on_completion": "keep"}),
        stateless=True,
        access=access_of(request),
    )
    return Response(serde.dumps(run_to_wire(run)), media_type="application/json", headers=_headers(run, ""))


@router.post("/runs/wait")
async def stateless_wait(body: RunCreate, request: Request) -> Response:
    ctx = ctx_of(request)
    run = await run_in_threadpool(create_run, ctx, _stateless_thread(), body, stateless=True, access=access_of(request))
    return await _wait_response(ctx, run, body.on_disconnect)


@router.post("/runs/stream")
async def stateless_stream(body: RunCreate, request: Request) -> StreamingResponse:
    ctx = ctx_of(request)
    run = await run_in_threadpool(create_run, ctx, _stateless_thread(), body, stateless=True, access=access_of(request))
    return _stream_response(ctx, run, on_disconnect=body.on_disconnect)


def _create_batch(ctx: Context, bodies: list[RunCreate], access: Access) -> list[dict[str, Any]]:
    # Every run is drafted (checked, its size too) before any is queued: a bad item creates nothing.
    keep = {"on_completion": "keep"}  # background stateless runs keep their thread, as POST /runs does
    drafts = []
    for body in bodies:
        thread_id, body = _stateless_thread(), body.model_copy(update=keep)
        drafts.append((thread_id, body, _draft_run(ctx, thread_id, body, stateless=True, access=access)))
    return [create_run(ctx, t, b, stateless=True, access=access, draft=d) for t, b, d in drafts]


@router.post("/runs/batch")
async def create_batch(body: list[RunCreate], request: Request) -> list[dict[str, Any]]:
    if not body:
        raise HTTPException(422, "A batch needs at least one run")
    runs = await run_in_threadpool(_create_batch, ctx_of(request), body, access_of(request))
    return [run_to_wire(run) for run in runs]


@router.post("/runs/cancel", status_code=204)
async def cancel_many(body: RunsCancel, request: Request, action: str = "interrupt") -> Response:
    if action not in ("interrupt", "rollback"):
        raise HTTPException(422, "action must be 'interrupt' or 'rollback'")
    ctx = ctx_of(request)
    where = None
    if body.thread_id is not None:
        check_uuid(body.thread_id, "thread")
        for run_id in body.run_ids or ():
            check_uuid(run_id, "run")
        try:
            await aauthorized_thread(request, body.thread_id, "update", action=action)
        except HTTPException as exc:
            if exc.status_code == 404:
                raise HTTPException(404, f"Run not found: {', '.join(body.run_ids or ())}") from None
            raise
    else:
        filters = await access_of(request).aauthorize("threads", "update", {"action": action})
        where = _runs_of_visible_threads(ctx, filters) if filters else None
    try:
        await run_in_threadpool(
            cancel_runs,
            ctx,
            thread_id=body.thread_id,
            run_ids=body.run_ids,
            status=body.status,
            action=action,
            where=where,
        )
    except RunsMissing as exc:
        raise HTTPException(404, f"Run not found: {exc}") from None
    return Response(status_code=204)


def _runs_of_visible_threads(ctx: Context, filters: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """Whether a run's thread passes the user's filter (each thread read once)."""
    visible: dict[str, bool] = {}

    def where(run: dict[str, Any]) -> bool:
        thread_id = run["thread_id"]
        if thread_id not in visible:
            thread = ctx.threads.get(thread_id)
            visible[thread_id] = thread is not None and matches_filter(thread.get("metadata"), filters)
        return visible[thread_id]

    return where
