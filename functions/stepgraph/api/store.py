"""/store: the long-term store (`DynamoDBStore`) with the Agent Server's contract.

Each route asks the user's authorization first (`store.put`, `get`, `search`,
`list_namespaces`, `delete`) with the peer's value: the namespace (the prefix for search and
listing), the key and the route's options. A handler may rewrite `value["namespace"]` (for
example prefix it with the user's id): the route then uses the rewritten one, checked again. A
search's handler may return a filter: items must pass it too.

Namespace labels are non-empty and hold no "." (422, `{"detail"}`); a missing item is `null`
(200), as on the peer; put and delete answer 204.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from stepgraph.api.auth import access_of
from stepgraph.api.common import ctx_of

router = APIRouter(tags=["store"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # fields a newer SDK may send are not ours to refuse


class StorePut(_Body):
    namespace: list[str]
    key: str = Field(min_length=1)
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    ttl: float | None = Field(default=None, ge=0, le=1e9)  # minutes


class StoreDelete(_Body):
    namespace: list[str] = Field(default_factory=list)
    key: str = Field(min_length=1)


class StoreSearch(_Body):
    namespace_prefix: list[str] = Field(default_factory=list)
    filter: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreListNamespaces(_Body):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: int | None = Field(default=None, ge=1)
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


def _namespace(value: Any, *, empty_ok: bool = False) -> tuple[str, ...]:
    """A namespace the store accepts: labels that are non-empty strings without a period."""
    if not isinstance(value, (list, tuple)):
        raise HTTPException(422, "Namespace must be a list of labels")
    for label in value:
        if not isinstance(label, str) or not label or "." in label:
            raise HTTPException(422, f"Namespace label {label!r} must be a non-empty string without periods")
    if not value and not empty_ok:
        raise HTTPException(422, "Namespace must have at least one label")
    return tuple(value)


async def _authorized(request: Request, action: str, value: dict[str, Any]) -> dict[str, Any] | None:
    filters = await access_of(request).aauthorize("store", action, value)
    return filters


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except ValueError as exc:  # what the store refuses: a namespace, key, value or filter (nothing written)
        raise HTTPException(422, str(exc)) from None


@router.put("/store/items", status_code=204)
async def put_item(body: StorePut, request: Request) -> Response:
    value: dict[str, Any] = {
        "namespace": _namespace(body.namespace),
        "key": body.key,
        "value": body.value,
        "index": body.index,
        "ttl": body.ttl,
    }
    await _authorized(request, "put", value)
    store = ctx_of(request).store
    await _call(
        store.put, _namespace(value["namespace"]), value["key"], value["value"], index=value["index"], ttl=value["ttl"]
    )
    return Response(status_code=204)


@router.get("/store/items")
async def get_item(
    request: Request, key: str | None = None, namespace: str = "", refresh_ttl: bool | None = None
) -> Any:
    if not key:
        raise HTTPException(400, "Key is required")
    value: dict[str, Any] = {
        "namespace": _namespace(namespace.split(".") if namespace else []),
        "key": key,
        "refresh_ttl": refresh_ttl,
    }
    await _authorized(request, "get", value)
    store = ctx_of(request).store
    item = await _call(store.get, _namespace(value["namespace"]), value["key"], refresh_ttl=value["refresh_ttl"])
    return None if item is None else item.dict()


@router.delete("/store/items", status_code=204)
async def delete_item(body: StoreDelete, request: Request) -> Response:
    value: dict[str, Any] = {"namespace": _namespace(body.namespace), "key": body.key}
    await _authorized(request, "delete", value)
    await _call(ctx_of(request).store.delete, _namespace(value["namespace"]), value["key"])
    return Response(status_code=204)


@router.post("/store/items/search")
async def search_items(body: StoreSearch, request: Request) -> dict[str, Any]:
    value: dict[str, Any] = {
        "namespace": _namespace(body.namespace_prefix, empty_ok=True),
        "filter": body.filter,
        "limit": body.limit,
        "offset": body.offset,
        "query": body.query,
        "refresh_ttl": body.refresh_ttl,
    }
    auth_filter = await _authorized(request, "search", value)
    filters = value["filter"]
    if auth_filter:  # both must hold, as the peer asks its store
        filters = {"$and": [filters, auth_filter]} if filters else auth_filter
    items = await _call(
        ctx_of(request).store.search,
        _namespace(value["namespace"], empty_ok=True),
        filter=filters,
        limit=value["limit"],
        offset=value["offset"],
        query=value["query"],
        refresh_ttl=value["refresh_ttl"],
    )
    return {"items": [item.dict() for item in items]}


@router.post("/store/namespaces")
async def list_namespaces(body: StoreListNamespaces, request: Request) -> dict[str, Any]:
    value: dict[str, Any] = {
        "namespace": None if body.prefix is None else _namespace(body.prefix, empty_ok=True),
        "suffix": None if body.suffix is None else _namespace(body.suffix, empty_ok=True),
        "max_depth": body.max_depth,
        "limit": body.limit,
        "offset": body.offset,
    }
    await _authorized(request, "list_namespaces", value)
    prefix = value["namespace"]
    suffix = value["suffix"]
    namespaces = await _call(
        ctx_of(request).store.list_namespaces,
        prefix=None if not prefix else _namespace(prefix),
        suffix=None if not suffix else _namespace(suffix),
        max_depth=value["max_depth"],
        limit=value["limit"],
        offset=value["offset"],
    )
    return {"namespaces": [list(ns) for ns in namespaces]}
