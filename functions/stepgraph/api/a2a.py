"""A2A: every assistant is an agent at `/a2a/{assistant_id}` (JSON-RPC 2.0, SSE for streaming),
described by its agent card. The protocol is `a2a-sdk`'s (`a2a_agent`, loaded on the first A2A
request); the tasks behind it are runs (`a2a_tasks`). Authentication is the app's (API key or
custom auth), as on every other route; `http.disable_a2a` leaves these routes out.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from stepgraph.api.assistants import authorized_assistant
from stepgraph.api.common import ctx_of, resolve_assistant
from stepgraph.engine import system_assistant_id

__all__ = ["public_url", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["a2a"])

_AGENT = "stepgraph.api.a2a_agent"
# Where the Lambda Web Adapter puts API Gateway's request context (the public host and path).
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"


def public_url(request: Request) -> str:
    """The deployment's base URL as the client called it. Behind API Gateway the app sees neither
    the public host nor the stage (or custom-domain base path): the request context the Lambda Web
    Adapter forwards has both."""
    base = str(request.base_url).rstrip("/")
    raw = request.headers.get(REQUEST_CONTEXT_HEADER)
    if not raw:
        return base
    try:
        context = json.loads(raw)
        domain, path = context.get("domainName"), context.get("path")
    except (ValueError, AttributeError):
        logger.warning("unreadable %s header: the agent card names %s", REQUEST_CONTEXT_HEADER, base)
        return base
    if not isinstance(domain, str) or not domain:
        return base
    prefix = ""
    if isinstance(path, str) and path.endswith(request.url.path):
        prefix = path[: len(path) - len(request.url.path)].rstrip("/")
    return f"https://{domain}{prefix}"


def _agent(request: Request, assistant_id: str) -> dict[str, Any]:
    """The assistant (a UUID, or a graph id for its system assistant) the user may read."""
    ctx = ctx_of(request)
    if assistant_id in ctx.graphs.specs:
        assistant_id = system_assistant_id(assistant_id)
    else:
        resolve_assistant(ctx, assistant_id)  # the peer's 422 for what is neither
    return authorized_assistant(request, assistant_id)


async def _load_sdk() -> None:
    """`a2a-sdk` (through `a2a_agent`) is imported by the first A2A request a container serves,
    not by every cold start of the API; in a worker thread, off the event loop."""
    if _AGENT not in sys.modules:
        await run_in_threadpool(importlib.import_module, _AGENT)


async def _card(request: Request, assistant_id: str) -> JSONResponse:
    await _load_sdk()
    from stepgraph.api.a2a_agent import agent_card

    assistant = await run_in_threadpool(_agent, request, assistant_id)
    url = f"{public_url(request)}/a2a/{assistant['assistant_id']}"
    return JSONResponse(agent_card(request, assistant, url))


@router.get("/a2a/{assistant_id}/.well-known/agent-card.json")
@router.get("/a2a/{assistant_id}/.well-known/agent.json", include_in_schema=False)
async def get_agent_card(assistant_id: str, request: Request) -> JSONResponse:
    return await _card(request, assistant_id)


@router.get("/.well-known/agent-card.json")
async def get_default_agent_card(request: Request, assistant_id: str | None = None) -> JSONResponse:
    if not assistant_id:
        raise HTTPException(422, "assistant_id is required: /.well-known/agent-card.json?assistant_id=...")
    return await _card(request, assistant_id)


@router.post("/a2a/{assistant_id}")
@router.post("/a2a/{assistant_id}/", include_in_schema=False)
async def call_agent(assistant_id: str, request: Request) -> Response:
    """One JSON-RPC request: its answer, or its SSE stream for the streaming methods."""
    await _load_sdk()
    from stepgraph.api.a2a_agent import answer

    assistant = await run_in_threadpool(_agent, request, assistant_id)
    return await answer(request, assistant)
