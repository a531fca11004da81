"""A2A: every assistant is an agent at `/a2a/{assistant_id}` (JSON-RPC 2.0, SSE for streaming),
described by its agent card. `a2a-sdk`'s dispatcher parses the requests, answers the A2A error
codes and serves both the protocol 1.0 method names (`SendMessage`, ...) and 0.3's
(`message/send`, ...); the tasks behind them are runs (`a2a_tasks`). Authentication is the app's
(API key or custom auth), as on every other route.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    APIKeySecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0, VERSION_HEADER, TransportProtocol
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from stepgraph.api.a2a_tasks import RunTasks
from stepgraph.api.assistants import authorized_assistant
from stepgraph.api.auth import API_KEY_HEADER
from stepgraph.api.common import ctx_of, resolve_assistant
from stepgraph.engine import system_assistant_id

__all__ = ["agent_card", "public_url", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["a2a"])

MODES = ["application/json", "text/plain"]
# Where the Lambda Web Adapter puts API Gateway's request context (the public host and path).
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"


class _CallContext(DefaultServerCallContextBuilder):
    """The SDK's call context plus what the task handler needs: the HTTP request (the user's
    access, the app's context) and the assistant the route resolved."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state["request"] = request
        context.state["assistant"] = request.state.a2a_assistant
        return context


_dispatcher = JsonRpcDispatcher(RunTasks(), context_builder=_CallContext(), enable_v0_3_compat=True)


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


def agent_card(request: Request, assistant: dict[str, Any]) -> AgentCard:
    """The assistant as an agent: one skill (the graph), streaming, at this deployment's URL."""
    ctx = ctx_of(request)
    assistant_id, graph_id = assistant["assistant_id"], assistant["graph_id"]
    url = f"{public_url(request)}/a2a/{assistant_id}"
    name = assistant.get("name") or graph_id
    description = assistant.get("description") or f"The LangGraph graph {graph_id!r} served by stepgraph"
    card = AgentCard(
        name=name,
        description=description,
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding=TransportProtocol.JSONRPC, protocol_version=version)
            for version in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
        ],
        version=str(assistant.get("version") or 1),
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=MODES,
        default_output_modes=MODES,
        skills=[
            AgentSkill(
                id=f"{assistant_id}-main",
                name=name,
                description=description,
                tags=["langgraph", graph_id],
                input_modes=MODES,
                output_modes=MODES,
            )
        ],
    )
    if getattr(request.app.state, "auth", None) is None and ctx.settings.require_api_key:
        scheme = APIKeySecurityScheme(location="header", name=API_KEY_HEADER, description="the deployment's API key")
        card.security_schemes["apiKey"].CopyFrom(SecurityScheme(api_key_security_scheme=scheme))
        card.security_requirements.append(SecurityRequirement(schemes={"apiKey": StringList()}))
    return card


async def _card_response(request: Request, assistant_id: str) -> JSONResponse:
    assistant = await run_in_threadpool(_agent, request, assistant_id)
    return JSONResponse(agent_card_to_dict(agent_card(request, assistant)))


@router.get("/a2a/{assistant_id}/.well-known/agent-card.json")
@router.get("/a2a/{assistant_id}/.well-known/agent.json", include_in_schema=False)
async def get_agent_card(assistant_id: str, request: Request) -> JSONResponse:
    return await _card_response(request, assistant_id)


@router.get("/.well-known/agent-card.json")
async def get_default_agent_card(request: Request, assistant_id: str | None = None) -> JSONResponse:
    if not assistant_id:
        raise HTTPException(422, "assistant_id is required: /.well-known/agent-card.json?assistant_id=...")
    return await _card_response(request, assistant_id)


@router.post("/a2a/{assistant_id}")
@router.post("/a2a/{assistant_id}/", include_in_schema=False)
async def call_agent(assistant_id: str, request: Request) -> Response:
    """One JSON-RPC request: its answer, or its SSE stream for the streaming methods."""
    request.state.a2a_assistant = await run_in_threadpool(_agent, request, assistant_id)
    await _default_version(request)
    return await _dispatcher.handle_requests(request)


async def _default_version(request: Request) -> None:
    """A 1.0 method name sent without an `A2A-Version` header is served as 1.0, as the peer does
    (the SDK would take it for 0.3 and refuse it); 0.3's names need no header either."""
    if any(name == VERSION_HEADER.lower().encode() for name, _ in request.scope["headers"]):
        return
    try:
        body = await request.json()  # cached on the request: the dispatcher reads it again
    except ValueError:
        return  # the dispatcher answers the parse error
    if isinstance(body, dict) and body.get("method") in JsonRpcDispatcher.METHOD_TO_MODEL:
        request.scope["headers"] = [*request.scope["headers"], (VERSION_HEADER.lower().encode(), b"1.0")]
        request.__dict__.pop("_headers", None)  # Starlette caches the parsed headers
