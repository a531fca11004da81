"""/threads: CRUD, search, state and history (time travel reads through the checkpointer).

Each route asks the user's authorization (`threads.create`, `read`, `update`, `delete`,
`search`) first; a thread its filter hides is a 404, as a missing one."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any, cast

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from stepgraph import engine, serde
from stepgraph.api.auth import access_of
from stepgraph.api.common import check_uuid, ctx_of, metadata_matches, page_of_listing, paginate, sort_items
from stepgraph.api.errors import not_found
from stepgraph.api.schemas import (
    CheckpointRequest,
    HistoryRequest,
    StateUpdate,
    ThreadCreate,
    ThreadPatch,
    ThreadPrune,
    ThreadSearch,
)
from stepgraph.client_errors import redact
from stepgraph.engine import (
    Context,
    HeadConflict,
    bound_graph,
    get_thread_state,
    matches_filter,
    new_thread,
    now_iso,
    snapshot_to_wire,
    state_config,
    thread_graph,
    update_thread_state,
)
from stepgraph.vocabulary import INFLIGHT, ThreadStatus

router = APIRouter(tags=["threads"])

_HIDDEN = ("active_run_id", "parked_run_id", "task_token")


def thread_to_wire(ctx: Context, thread: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in thread.items() if k not in _HIDDEN}
    out.setdefault("config", {})
    graph_id = thread_graph(ctx, thread)
    out["values"], out["interrupts"] = None, {}
    if graph_id:
        snapshot = get_thread_state(ctx, thread["thread_id"], graph_id)
        if snapshot.created_at is not None:
            out["values"] = serde.to_jsonable(snapshot.values)
            out["interrupts"] = {
                task.id: serde.to_jsonable(list(task.interrupts)) for task in snapshot.tasks if task.interrupts
            }
    return out


def load_thread(ctx: Context, thread_id: str, filters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The thread, if it exists and its metadata passes `filters` (the user's); else 404."""
    thread = ctx.threads.get(check_uuid(thread_id, "thread"))
    if thread is None or not matches_filter(thread.get("metadata"), filters):
        raise not_found("Thread")
    return thread


def authorized_thread(request: Request, thread_id: str, verb: str = "read", **value: Any) -> dict[str, Any]:
    """The thread, once the user may `verb` it (the `threads.<verb>` handler, given the thread id
    and `value`). Runs in a worker thread; `aauthorized_thread` on the event loop."""
    check_uuid(thread_id, "thread")
    filters = access_of(request).authorize("threads", verb, {"thread_id": thread_id, **value})
    return load_thread(ctx_of(request), thread_id, filters)


async def aauthorized_thread(request: Request, thread_id: str, verb: str = "read", **value: Any) -> dict[str, Any]:
    check_uuid(thread_id, "thread")
    filters = await access_of(request).aauthorize("threads", verb, {"thread_id": thread_id, **value})
    return await run_in_threadpool(load_thread, ctx_of(request), thread_id, filters)


@router.post("/threads")
def create_thread(body: ThreadCreate, request: Request) -> dict[str, Any]:
    ctx = ctx_of(request)
    thread_id = check_uuid(body.thread_id, "thread") if body.thread_id else str(uuid.uuid4())
    # The handler may stamp the metadata (an owner, say) or refuse.
    value: dict[str, Any] = {"thread_id": thread_id, "metadata": dict(body.metadata or {}), "if_exists": body.if_exists}
    filters = access_of(request).authorize("threads", "create", value)
    created = new_thread(ctx, thread_id, value.get("metadata"))
    if created is None:
        if body.if_exists == "do_nothing":
            # The existing thread is answered only to whom may create and read it.
            existing = ctx.threads.get(thread_id)
            read = access_of(request).authorize("threads", "read", {"thread_id": thread_id})
            metadata = (existing or {}).get("metadata")
            if existing is not None and matches_filter(metadata, filters) and matches_filter(metadata, read):
                return thread_to_wire(ctx, existing)
        raise HTTPException(409, "Thread already exists")
    return thread_to_wire(ctx, created)


def _search_filters(request: Request, body: ThreadSearch) -> dict[str, Any] | None:
    value = body.model_dump(include={"metadata", "values", "status", "limit", "offset", "ids"})
    return access_of(request).authorize("threads", "search", value)


def _matching(
    ctx: Context, body: ThreadSearch, filters: dict[str, Any] | None, page: int = 0
) -> Iterator[dict[str, Any]]:
    """The threads a search finds (its `values` aside), newest first (`sort_order` asc: oldest),
    from the listing index (`page` items a request), or by id: no search scans the table."""
    if body.ids:
        found: Iterable[dict[str, Any] | None] = (ctx.threads.get(i) for i in dict.fromkeys(body.ids))
    else:
        found = ctx.threads.listed(newest_first=(body.sort_order or "desc") == "desc", page=page)
    for t in found:
        if (
            t is not None
            and (body.status is None or t.get("status") == body.status)
            and metadata_matches(t.get("metadata"), body.metadata)
            and matches_filter(t.get("metadata"), filters)
        ):
            yield t


def _every_thread(body: ThreadSearch, filters: dict[str, Any] | None) -> bool:
    """The search's criteria hold for every thread: the index can count and page it unread."""
    return not (body.ids or body.status is not None or body.metadata or filters)


@router.post("/threads/search")
def search_threads(body: ThreadSearch, request: Request, response: Response) -> list[dict[str, Any]]:
    ctx = ctx_of(request)
    filters = _search_filters(request, body)
    if (body.sort_by or "created_at") == "created_at" and _every_thread(body, filters):
        # The index's own order: read only as far as the page.
        listing = _matching(ctx, body, filters, page=body.offset + body.limit)
        page = page_of_listing(response, listing, ctx.threads.count(), body.offset, body.limit)
    else:
        items = list(_matching(ctx, body, filters))
        sort_items(items, body.sort_by, body.sort_order, "created_at")
        page = paginate(response, items, body.offset, body.limit)
    wired = [thread_to_wire(ctx, t) for t in page]
    if body.values:
        wired = [t for t in wired if metadata_matches(t.get("values"), body.values)]
    return wired


@router.post("/threads/count")
def count_threads(body: ThreadSearch, request: Request) -> int:
    ctx = ctx_of(request)
    filters = _search_filters(request, body)
    body = body.model_copy(update={"ids": None})  # as before: count ignores ids
    if _every_thread(body, filters):
        return ctx.threads.count()
    return sum(1 for _ in _matching(ctx, body, filters))


def _deletable(request: Request, thread_ids: list[str]) -> list[str]:
    """The threads the user may delete (`threads.delete` each); others are skipped, as missing."""
    ctx, access = ctx_of(request), access_of(request)
    kept = []
    for thread_id in thread_ids:
        filters = access.authorize("threads", "delete", {"thread_id": thread_id})
        thread = ctx.threads.get(thread_id) if filters else None
        if not filters or (thread is not None and matches_filter(thread.get("metadata"), filters)):
            kept.append(thread_id)
    return kept


@router.post("/threads/prune")
async def prune(body: ThreadPrune, request: Request) -> dict[str, int]:
    thread_ids = [check_uuid(t, "thread") for t in body.thread_ids]
    thread_ids = await run_in_threadpool(_deletable, request, thread_ids)
    pruned = await run_in_threadpool(engine.prune_threads, ctx_of(request), thread_ids, body.strategy)
    return {"pruned_count": pruned}


@router.get("/threads/{thread_id}")
def get_thread(thread_id: str, request: Request) -> dict[str, Any]:
    return thread_to_wire(ctx_of(request), authorized_thread(request, thread_id))


@router.patch("/threads/{thread_id}")
def patch_thread(thread_id: str, body: ThreadPatch, request: Request) -> dict[str, Any]:
    ctx = ctx_of(request)
    value: dict[str, Any] = {"thread_id": check_uuid(thread_id, "thread"), "metadata": dict(body.metadata or {})}
    filters = access_of(request).authorize("threads", "update", value)
    thread = load_thread(ctx, thread_id, filters)
    thread["metadata"] = {**(thread.get("metadata") or {}), **(value.get("metadata") or {})}
    thread["updated_at"] = now_iso()
    ctx.threads.update_doc(thread_id, thread)
    return thread_to_wire(ctx, thread)


@router.delete("/threads/{thread_id}", status_code=204)
def delete_thread(thread_id: str, request: Request) -> Response:
    authorized_thread(request, thread_id, "delete")
    engine.delete_thread(ctx_of(request), thread_id)
    return Response(status_code=204)


def _state(request: Request, thread_id: str, checkpoint: dict[str, Any] | None, subgraphs: bool) -> dict[str, Any]:
    ctx = ctx_of(request)
    thread = authorized_thread(request, thread_id)
    graph_id = thread_graph(ctx, thread)
    if graph_id is None:
        return {
            "values": {},
            "next": [],
            "tasks": [],
            "metadata": {},
            "created_at": None,
            "checkpoint": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": None, "checkpoint_map": None},
            "parent_checkpoint": None,
            "interrupts": [],
        }
    snapshot = get_thread_state(ctx, thread_id, graph_id, checkpoint, subgraphs=subgraphs)
    if checkpoint and checkpoint.get("checkpoint_id") and snapshot.created_at is None:
        raise not_found("Checkpoint")
    return snapshot_to_wire(snapshot)


@router.get("/threads/{thread_id}/state")
def get_state(thread_id: str, request: Request, subgraphs: bool = False) -> dict[str, Any]:
    return _state(request, thread_id, None, subgraphs)


@router.get("/threads/{thread_id}/state/{checkpoint_id}")
def get_state_at(thread_id: str, checkpoint_id: str, request: Request, subgraphs: bool = False) -> dict[str, Any]:
    return _state(request, thread_id, {"checkpoint_id": check_uuid(checkpoint_id, "checkpoint")}, subgraphs)


@router.post("/threads/{thread_id}/state/checkpoint")
def get_state_at_checkpoint(thread_id: str, body: CheckpointRequest, request: Request) -> dict[str, Any]:
    return _state(request, thread_id, body.checkpoint, body.subgraphs)


@router.post("/threads/{thread_id}/state")
def update_state(thread_id: str, body: StateUpdate, request: Request) -> dict[str, Any]:
    ctx = ctx_of(request)
    thread = authorized_thread(request, thread_id, "update")
    graph_id = thread_graph(ctx, thread)
    if graph_id is None:
        raise HTTPException(400, "Thread has no graph yet: run it once before updating its state.")
    checkpoint = dict(body.checkpoint or {})
    if body.checkpoint_id:
        checkpoint["checkpoint_id"] = body.checkpoint_id
    try:
        config = update_thread_state(ctx, thread_id, graph_id, checkpoint, body.values, as_node=body.as_node)
    except HeadConflict as conflict:
        # Nothing was written: a run holds or waits for the thread, or another update came first.
        if conflict.reason == "lease":
            raise HTTPException(409, "Thread is busy: wait for its run to finish before updating its state.") from None
        raise HTTPException(409, "Thread state changed while it was being updated: read it and try again.") from None
    except (ValueError, KeyError, TypeError, InvalidUpdateError) as exc:
        # An as_node the graph lacks, values its reducers cannot take: nothing was written.
        raise HTTPException(400, redact(str(exc))) from None
    thread["state_updated_at"] = thread["updated_at"] = now_iso()
    ctx.threads.update_doc(thread_id, thread)
    # Unless a run took the thread since the commit (it sets the status itself).
    snapshot = get_thread_state(ctx, thread_id, graph_id)
    ctx.queue.settle(thread_id, ThreadStatus.INTERRUPTED if snapshot.next else ThreadStatus.IDLE)
    c = config["configurable"]
    return {
        "checkpoint": {
            "thread_id": thread_id,
            "checkpoint_ns": c.get("checkpoint_ns", ""),
            "checkpoint_id": c.get("checkpoint_id"),
            "checkpoint_map": c.get("checkpoint_map"),
        }
    }


def _history(request: Request, thread_id: str, body: HistoryRequest) -> list[dict[str, Any]]:
    ctx = ctx_of(request)
    thread = authorized_thread(request, thread_id)
    graph_id = thread_graph(ctx, thread)
    if graph_id is None:
        return []
    config = state_config(thread_id, body.checkpoint)
    before: RunnableConfig | None = None
    if isinstance(body.before, str):
        before = {"configurable": {"checkpoint_id": body.before}}
    elif isinstance(body.before, dict):
        # A config, or the checkpoint it configures (HistoryRequest has checked either)
        before = cast(RunnableConfig, body.before) if "configurable" in body.before else {"configurable": body.before}
    graph = bound_graph(ctx, graph_id)
    return [
        snapshot_to_wire(s)
        for s in graph.get_state_history(config, filter=body.metadata, before=before, limit=body.limit)
    ]


@router.post("/threads/{thread_id}/history")
def post_history(thread_id: str, body: HistoryRequest, request: Request) -> list[dict[str, Any]]:
    return _history(request, thread_id, body)


@router.get("/threads/{thread_id}/history")
def get_history(
    thread_id: str, request: Request, limit: int = Query(1, ge=1, le=1000), before: str | None = None
) -> list[dict[str, Any]]:
    try:
        body = HistoryRequest(limit=limit, before=before)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    return _history(request, thread_id, body)


@router.post("/threads/{thread_id}/copy")
def copy_thread(thread_id: str, request: Request) -> dict[str, Any]:
    ctx = ctx_of(request)
    thread = authorized_thread(request, thread_id)
    if thread.get("status") in INFLIGHT or thread.get("active_run_id"):
        raise HTTPException(409, "Thread is busy: copy it when its run has finished.")
    copy_id = str(uuid.uuid4())
    # The copy is a thread the user creates: its handler may stamp it (or refuse).
    value: dict[str, Any] = {"thread_id": copy_id, "metadata": dict(thread.get("metadata") or {}), "if_exists": "raise"}
    access_of(request).authorize("threads", "create", value)
    created = new_thread(ctx, copy_id, value.get("metadata"))
    assert created is not None
    ctx.checkpointer.copy_thread(thread_id, copy_id)
    ctx.threads.set_status(copy_id, thread.get("status", ThreadStatus.IDLE))
    return thread_to_wire(ctx, load_thread(ctx, copy_id))
