"""/assistants: a system assistant per graph plus user-created ones, with versions.

Each route asks the user's authorization (`assistants.create`, `read`, `update`, `delete`,
`search`) first; an assistant its filter hides is a 404, as a missing one. Running an
assistant is a thread's business (`threads.create_run`)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from stepgraph import serde
from stepgraph.api.auth import access_of
from stepgraph.api.common import check_uuid, ctx_of, metadata_matches, page_of_listing, paginate, sort_items
from stepgraph.api.errors import not_found
from stepgraph.api.schemas import AssistantCreate, AssistantLatest, AssistantPatch, AssistantSearch
from stepgraph.engine import Context, matches_filter, now_iso, system_assistant_id

logger = logging.getLogger(__name__)

router = APIRouter(tags=["assistants"])


def ensure_system_assistants(ctx: Context) -> None:
    """One assistant per graph with the peer's uuid5 id; idempotent across cold starts."""
    now = now_iso()
    for graph_id in ctx.graphs.graph_ids():
        ctx.assistants.put(
            {
                "assistant_id": system_assistant_id(graph_id),
                "graph_id": graph_id,
                "config": {},
                "context": {},
                "metadata": {"created_by": "system"},
                "name": _graph_name(ctx, graph_id),
                "description": ctx.graphs.specs[graph_id].description,
                "created_at": now,
                "updated_at": now,
                "version": 1,
            },
            if_absent=True,
        )


def _graph_name(ctx: Context, graph_id: str) -> str:
    try:
        name = ctx.graphs.get(graph_id).name
    except Exception:  # importing the user's graph can raise anything; its runs will report it too
        logger.warning("graph %r does not load: its assistant is named after its id", graph_id, exc_info=True)
        return graph_id
    return name if name and name != "LangGraph" else graph_id


def _check_graph(ctx: Context, graph_id: str) -> None:
    if graph_id not in ctx.graphs.specs:
        raise HTTPException(404, f"Graph '{graph_id}' not found. Available graphs: {', '.join(ctx.graphs.specs)}")


def load_assistant(ctx: Context, assistant_id: str, filters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The assistant, if it exists and its metadata passes `filters` (the user's); else 404."""
    assistant = ctx.assistants.get(check_uuid(assistant_id, "assistant"))
    if assistant is None or not matches_filter(assistant.get("metadata"), filters):
        raise not_found("Assistant")
    return assistant


def authorized_assistant(request: Request, assistant_id: str, verb: str = "read", **value: Any) -> dict[str, Any]:
    """The assistant, once the user may `verb` it (the `assistants.<verb>` handler)."""
    check_uuid(assistant_id, "assistant")
    filters = access_of(request).authorize("assistants", verb, {"assistant_id": assistant_id, **value})
    return load_assistant(ctx_of(request), assistant_id, filters)


@router.post("/assistants")
def create_assistant(body: AssistantCreate, request: Request) -> dict[str, Any]:
    ctx = ctx_of(request)
    _check_graph(ctx, body.graph_id)
    assistant_id = check_uuid(body.assistant_id, "assistant") if body.assistant_id else str(uuid.uuid4())
    value: dict[str, Any] = {
        "assistant_id": assistant_id,
        "graph_id": body.graph_id,
        "config": body.config or {},
        "context": body.context or {},
        "metadata": dict(body.metadata or {}),
        "if_exists": body.if_exists,
        "name": body.name or "Untitled",
    }
    # The handler may stamp the metadata (an owner, say) or refuse.
    filters = access_of(request).authorize("assistants", "create", value)
    now = now_iso()
    doc = {
        "assistant_id": assistant_id,
        "graph_id": body.graph_id,
        "config": body.config or {},
        "context": body.context or {},
        "metadata": value.get("metadata") or {},
        "name": body.name or "Untitled",
        "description": body.description,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    if not ctx.assistants.put(doc, if_absent=True):
        if body.if_exists == "do_nothing":
            # The existing assistant is answered only to whom may create and read it.
            existing = ctx.assistants.get(assistant_id)
            read = access_of(request).authorize("assistants", "read", {"assistant_id": assistant_id})
            metadata = (existing or {}).get("metadata")
            if existing is not None and matches_filter(metadata, filters) and matches_filter(metadata, read):
                return existing
        raise HTTPException(409, "Assistant already exists")
    return doc


@router.post("/assistants/search")
def search_assistants(body: AssistantSearch, request: Request, response: Response) -> list[dict[str, Any]]:
    value = body.model_dump(include={"graph_id", "metadata", "limit", "offset"})
    filters = access_of(request).authorize("assistants", "search", value)
    ctx = ctx_of(request)
    narrowed = body.graph_id is not None or body.name is not None or body.metadata or filters
    newest_first = (body.sort_order or "desc") == "desc"
    if (body.sort_by or "created_at") == "created_at" and not narrowed:
        # The listing index's own order: read only as far as the page.
        listing = ctx.assistants.listed(newest_first=newest_first, page=body.offset + body.limit)
        return page_of_listing(response, listing, ctx.assistants.count(), body.offset, body.limit)
    items = [
        a
        for a in ctx.assistants.listed(newest_first=newest_first)
        if (body.graph_id is None or a["graph_id"] == body.graph_id)
        and (body.name is None or body.name.lower() in (a.get("name") or "").lower())
        and metadata_matches(a.get("metadata"), body.metadata)
        and matches_filter(a.get("metadata"), filters)
    ]
    sort_items(items, body.sort_by, body.sort_order, "created_at")
    return paginate(response, items, body.offset, body.limit)


@router.post("/assistants/count")
def count_assistants(body: AssistantSearch, request: Request) -> int:
    return len(search_assistants(body.model_copy(update={"limit": 1000, "offset": 0}), request, Response()))


@router.get("/assistants/{assistant_id}")
def get_assistant(assistant_id: str, request: Request) -> dict[str, Any]:
    return authorized_assistant(request, assistant_id)


@router.patch("/assistants/{assistant_id}")
def patch_assistant(assistant_id: str, body: AssistantPatch, request: Request) -> dict[str, Any]:
    ctx = ctx_of(request)
    value: dict[str, Any] = {
        "assistant_id": check_uuid(assistant_id, "assistant"),
        **body.model_dump(include={"graph_id", "config", "context", "name"}),
        "metadata": dict(body.metadata or {}),
        "version": None,
    }
    filters = access_of(request).authorize("assistants", "update", value)
    current = load_assistant(ctx, assistant_id, filters)
    if body.graph_id:
        _check_graph(ctx, body.graph_id)
    patch = body.model_dump(exclude_unset=True, include=set(AssistantPatch.model_fields))
    doc = {**current, **{k: v for k, v in patch.items() if v is not None}}
    doc["metadata"] = {**(current.get("metadata") or {}), **(value.get("metadata") or {})}
    doc["version"] = max(v["version"] for v in ctx.assistants.versions(assistant_id)) + 1
    doc["updated_at"] = now_iso()
    ctx.assistants.put(doc)
    return doc


@router.delete("/assistants/{assistant_id}", status_code=204)
def delete_assistant(assistant_id: str, request: Request) -> Response:
    authorized_assistant(request, assistant_id, "delete")
    if not ctx_of(request).assistants.delete(assistant_id):
        raise not_found("Assistant")
    return Response(status_code=204)


@router.post("/assistants/{assistant_id}/versions")
def list_versions(assistant_id: str, request: Request) -> list[dict[str, Any]]:
    authorized_assistant(request, assistant_id)
    return ctx_of(request).assistants.versions(assistant_id)


@router.get("/assistants/{assistant_id}/graph")
def get_graph(assistant_id: str, request: Request, xray: bool | int = False) -> dict[str, Any]:
    assistant = authorized_assistant(request, assistant_id)
    drawable = ctx_of(request).graphs.get(assistant["graph_id"]).get_graph(xray=xray)
    graph: dict[str, Any] = serde.to_jsonable(drawable.to_json())
    return graph


@router.get("/assistants/{assistant_id}/schemas")
def get_schemas(assistant_id: str, request: Request) -> dict[str, Any]:
    assistant = authorized_assistant(request, assistant_id)
    return graph_schemas(assistant["graph_id"], ctx_of(request).graphs.get(assistant["graph_id"]))


def graph_schemas(graph_id: str, graph: Any) -> dict[str, Any]:
    return {
        "graph_id": graph_id,
        "input_schema": _json_schema(graph, "get_input_jsonschema"),
        "output_schema": _json_schema(graph, "get_output_jsonschema"),
        "state_schema": _json_schema(graph, "get_input_jsonschema"),
        "config_schema": _json_schema(graph, "get_config_jsonschema"),
        "context_schema": _json_schema(graph, "get_context_jsonschema"),
    }


def _json_schema(graph: Any, method: str) -> dict[str, Any] | None:
    """A schema pydantic cannot build (a `typing.TypedDict` state on Python < 3.12, an
    arbitrary class) is reported as null, as a schema the graph does not declare is."""
    if not hasattr(graph, method):
        return None
    try:
        schema: dict[str, Any] | None = getattr(graph, method)()
    except Exception as exc:  # noqa: BLE001 - user types; the graph still runs
        logger.warning("%s of graph %r failed: %s", method, getattr(graph, "name", graph), exc)
        return None
    return schema


@router.get("/assistants/{assistant_id}/subgraphs")
@router.get("/assistants/{assistant_id}/subgraphs/{namespace}")
def get_subgraphs(
    assistant_id: str, request: Request, namespace: str | None = None, recurse: bool = False
) -> dict[str, Any]:
    """The schemas of the graph's subgraphs by namespace (`parent|child` when recursing)."""
    assistant = authorized_assistant(request, assistant_id)
    graph = ctx_of(request).graphs.get(assistant["graph_id"])
    return {
        ns: graph_schemas(assistant["graph_id"], subgraph)
        for ns, subgraph in graph.get_subgraphs(namespace=namespace, recurse=recurse)
    }


@router.post("/assistants/{assistant_id}/latest")
def set_latest_version(assistant_id: str, body: AssistantLatest, request: Request) -> dict[str, Any]:
    """Make an earlier (or later) version the one runs use."""
    ctx = ctx_of(request)
    authorized_assistant(request, assistant_id, "update", version=body.version)
    chosen = next((v for v in ctx.assistants.versions(assistant_id) if v["version"] == body.version), None)
    if chosen is None:
        raise HTTPException(404, f"Assistant version {body.version} not found")
    ctx.assistants.put(chosen)
    return chosen
