"""Helpers shared by the API routes: the context, id checks and the peer's error shape."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from itertools import islice
from typing import Any

from fastapi import HTTPException, Request, Response

from stepgraph.engine import Context, system_assistant_id


def ctx_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx  # set by create_app
    return ctx


def check_uuid(value: str, what: str) -> str:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise HTTPException(422, f"Invalid {what} ID: must be a UUID") from None
    return value


def resolve_assistant(ctx: Context, assistant_id: str) -> dict[str, Any]:
    """A UUID names an assistant; anything else must be a graph id (its system assistant)."""
    try:
        uuid.UUID(assistant_id)
    except ValueError:
        if assistant_id not in ctx.graphs.specs:
            graphs = ", ".join(sorted(ctx.graphs.specs))
            raise HTTPException(
                422, f"Invalid assistant: '{assistant_id}'. Must be either a UUID or one of the graph IDs: {graphs}"
            ) from None
        assistant_id = system_assistant_id(assistant_id)
    assistant = ctx.assistants.get(assistant_id)
    if assistant is None:
        raise HTTPException(404, "Thread or assistant not found.")
    return assistant


def paginate(response: Response, items: list[Any], offset: int, limit: int) -> list[Any]:
    page = items[offset : offset + limit]
    response.headers["X-Pagination-Total"] = str(len(items))
    if offset + limit < len(items):
        response.headers["X-Pagination-Next"] = str(offset + limit)
    return page


def page_of_listing(
    response: Response, listing: Iterable[dict[str, Any]], total: int, offset: int, limit: int
) -> list[dict[str, Any]]:
    """`paginate` of a listing already in order, read only as far as the page: `total` counts it."""
    response.headers["X-Pagination-Total"] = str(total)
    if offset + limit < total:
        response.headers["X-Pagination-Next"] = str(offset + limit)
    return list(islice(listing, offset, offset + limit))


def metadata_matches(metadata: dict[str, Any] | None, wanted: dict[str, Any] | None) -> bool:
    metadata = metadata or {}
    return all(metadata.get(k) == v for k, v in (wanted or {}).items())


def sort_items(items: list[dict[str, Any]], sort_by: str | None, sort_order: str | None, default: str) -> None:
    key = sort_by or default
    items.sort(key=lambda d: (d.get(key) is None, str(d.get(key))), reverse=(sort_order or "desc") == "desc")
