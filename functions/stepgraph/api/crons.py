"""/runs/crons: crons for a thread or stateless, their search, count, update and delete.

Each route asks the user's authorization (`crons.create`, `read`, `update`, `delete`, `search`);
a cron its filter hides is a 404, as a missing one, and is left out of searches and counts. A
thread cron also needs `threads.create_run` on its thread: each fire is a run there."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import Field, field_validator
from starlette.concurrency import run_in_threadpool

from stepgraph.api.auth import Access, access_of
from stepgraph.api.common import check_uuid, ctx_of, metadata_matches, paginate, resolve_assistant, sort_items
from stepgraph.api.errors import not_found
from stepgraph.api.schemas import StreamMode, _Body, check_config
from stepgraph.api.threads import authorized_thread
from stepgraph.engine import (
    RUN_FIELDS,
    Conflict,
    Context,
    InvalidSchedule,
    check_document_size,
    check_run_webhook,
    check_schedule,
    create_cron,
    delete_cron,
    matches_filter,
    system_assistant_id,
    update_cron,
)

router = APIRouter(tags=["crons"])

_WIRE = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "user_id",
    "end_time",
    "schedule",
    "timezone",
    "payload",
    "next_run_date",
    "metadata",
    "on_run_completed",
    "enabled",
    "created_at",
    "updated_at",
)
# What a PATCH may change beside the run payload.
_CRON_FIELDS = ("schedule", "timezone", "end_time", "enabled", "on_run_completed", "metadata")


class _CronRun(_Body):
    """The fields each fire's run gets (the cron's `payload`)."""

    input: Any = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    metadata: dict[str, Any] | None = None
    timezone: str | None = None
    end_time: datetime | None = None
    on_run_completed: Literal["delete", "keep"] | None = None

    _config = field_validator("config")(check_config)


class CronCreate(_CronRun):
    assistant_id: str
    schedule: str
    enabled: bool = True
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] | None = None


class CronPatch(_CronRun):
    schedule: str | None = None
    enabled: bool | None = None


class CronSearch(_Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: (
        Literal["cron_id", "assistant_id", "thread_id", "created_at", "updated_at", "next_run_date", "end_time"] | None
    ) = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None

    @field_validator("select")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        unknown = set(value or ()) - set(_WIRE)
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        return value


class CronCount(_Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None


def cron_to_wire(cron: dict[str, Any], select: list[str] | None = None) -> dict[str, Any]:
    return {k: cron.get(k) for k in (select or _WIRE)}


def _end_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _payload(body: _CronRun) -> dict[str, Any]:
    payload = body.model_dump(include=set(RUN_FIELDS), exclude_none=True)
    if isinstance(payload.get("stream_mode"), str):
        payload["stream_mode"] = [payload["stream_mode"]]
    return payload


def _checked(schedule: str, timezone: str | None) -> None:
    try:
        check_schedule(schedule, timezone)
    except InvalidSchedule as exc:
        raise HTTPException(422, str(exc)) from None


def _create(ctx: Context, body: CronCreate, thread_id: str | None, access: Access) -> dict[str, Any]:
    if body.config and body.config.get("configurable") and body.context:
        raise HTTPException(400, "Cannot specify both configurable and context. Prefer setting context alone.")
    _checked(body.schedule, body.timezone)
    assistant = resolve_assistant(ctx, body.assistant_id)
    payload = {**_payload(body), "assistant_id": assistant["assistant_id"]}
    if thread_id is not None:
        payload["multitask_strategy"] = body.multitask_strategy or "enqueue"
    cron: dict[str, Any] = {
        "cron_id": str(uuid.uuid4()),
        "assistant_id": assistant["assistant_id"],
        "thread_id": thread_id,
        "user_id": (access.fields or {}).get("identity"),
        "schedule": body.schedule,
        "timezone": body.timezone,
        "end_time": _end_time(body.end_time),
        "enabled": body.enabled,
        "on_run_completed": None if thread_id else (body.on_run_completed or "delete"),
        "metadata": dict(body.metadata or {}),
        "payload": payload,
    }
    # The handler may stamp the metadata (an owner, say) or refuse.
    access.authorize("crons", "create", cron)
    if payload.get("webhook"):
        check_run_webhook(ctx, payload["webhook"])  # refused: 422, nothing written
    if access.fields:
        cron["auth_user"] = access.fields  # each fire's run is the creator's, as a run they create
    check_document_size(cron)
    return create_cron(ctx, cron)


@router.post("/runs/crons")
async def create_stateless_cron(body: CronCreate, request: Request) -> dict[str, Any]:
    if body.multitask_strategy is not None:
        raise HTTPException(422, "multitask_strategy applies to a thread's cron only")
    cron = await run_in_threadpool(_create, ctx_of(request), body, None, access_of(request))
    return cron_to_wire(cron)


def _create_for_thread(request: Request, thread_id: str, body: CronCreate) -> dict[str, Any]:
    if body.on_run_completed is not None:
        raise HTTPException(422, "on_run_completed applies to a stateless cron only")
    authorized_thread(request, thread_id, "create_run", assistant_id=body.assistant_id)
    return _create(ctx_of(request), body, thread_id, access_of(request))


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(thread_id: str, body: CronCreate, request: Request) -> dict[str, Any]:
    cron = await run_in_threadpool(_create_for_thread, request, check_uuid(thread_id, "thread"), body)
    return cron_to_wire(cron)


def _visible(request: Request, action: str, value: dict[str, Any]) -> list[dict[str, Any]]:
    """The crons the user may `action` (search, count) among those `value` selects."""
    ctx = ctx_of(request)
    filters = access_of(request).authorize("crons", action, value)
    assistant_id = value.get("assistant_id")
    if assistant_id is not None:
        try:
            uuid.UUID(assistant_id)
        except ValueError:
            assistant_id = system_assistant_id(assistant_id)  # a graph id names its system assistant
    crons = ctx.crons.search(assistant_id=assistant_id, thread_id=value.get("thread_id"))
    return [
        c
        for c in crons
        if metadata_matches(c.get("metadata"), value.get("metadata")) and matches_filter(c.get("metadata"), filters)
    ]


@router.post("/runs/crons/search")
def search_crons(body: CronSearch, request: Request, response: Response) -> list[dict[str, Any]]:
    value = body.model_dump(exclude_none=True)
    crons = [c for c in _visible(request, "search", value) if body.enabled is None or c["enabled"] == body.enabled]
    sort_items(crons, body.sort_by, body.sort_order, "created_at")
    return [cron_to_wire(c, body.select) for c in paginate(response, crons, body.offset, body.limit)]


@router.post("/runs/crons/count")
def count_crons(body: CronCount, request: Request) -> int:
    return len(_visible(request, "search", body.model_dump(exclude_none=True)))


def _authorized_cron(
    request: Request, cron_id: str, action: str, value: dict[str, Any] | None = None
) -> dict[str, Any]:
    filters = access_of(request).authorize("crons", action, {**(value or {}), "cron_id": check_uuid(cron_id, "cron")})
    cron = ctx_of(request).crons.get(cron_id)
    if cron is None or not matches_filter(cron.get("metadata"), filters):
        raise not_found("Cron")
    return cron


@router.get("/runs/crons/{cron_id}")
def get_cron(cron_id: str, request: Request) -> dict[str, Any]:
    return cron_to_wire(_authorized_cron(request, cron_id, "read"))


@router.patch("/runs/crons/{cron_id}")
def patch_cron(cron_id: str, body: CronPatch, request: Request) -> dict[str, Any]:
    given = body.model_fields_set | set(body.model_extra or {})
    if not given:
        raise HTTPException(400, "Nothing to update: give at least one field")
    cron = _authorized_cron(request, cron_id, "update", body.model_dump(exclude_unset=True))
    if body.webhook:
        check_run_webhook(ctx_of(request), body.webhook)  # refused: 422, nothing written
    schedule = body.schedule if body.schedule is not None else cron["schedule"]
    _checked(schedule, body.timezone if "timezone" in given else cron.get("timezone"))
    if body.on_run_completed is not None and cron.get("thread_id"):
        raise HTTPException(422, "on_run_completed applies to a stateless cron only")
    changes: dict[str, Any] = {k: getattr(body, k) for k in _CRON_FIELDS if k in given and k != "end_time"}
    if changes.get("metadata") is not None:
        changes["metadata"] = {**(cron.get("metadata") or {}), **changes["metadata"]}
    for key in ("schedule", "enabled", "metadata", "on_run_completed"):
        if key in changes and changes[key] is None:
            del changes[key]  # null leaves these as they are; only end_time is cleared by null
    if "end_time" in given:
        changes["end_time"] = _end_time(body.end_time)
    changes["payload"] = {k: v for k, v in _payload(body).items() if k in given}
    ctx = ctx_of(request)
    check_document_size({**cron, **changes})
    try:
        updated = update_cron(ctx, cron_id, changes)
    except Conflict:
        raise HTTPException(409, "The cron changed while it was updated; try again") from None
    if updated is None:
        raise not_found("Cron")
    return cron_to_wire(updated)


@router.delete("/runs/crons/{cron_id}", status_code=204)
def delete_cron_route(cron_id: str, request: Request) -> Response:
    _authorized_cron(request, cron_id, "delete")
    if not delete_cron(ctx_of(request), cron_id):
        raise not_found("Cron")
    return Response(status_code=204)
