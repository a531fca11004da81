"""The A2A side of an assistant, on `a2a-sdk`: its agent card, and the JSON-RPC dispatcher that
parses requests, answers the A2A error codes and serves the protocol 1.0 method names
(`SendMessage`, ...) and 0.3's (`message/send`, ...) over `RunTasks`. Imported on the first A2A
request (`stepgraph.api.a2a`), so the SDK costs the API's cold start nothing."""

from __future__ import annotations

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
from fastapi import Request, Response

from stepgraph.api.a2a_tasks import RunTasks
from stepgraph.api.auth import API_KEY_HEADER
from stepgraph.api.common import ctx_of

__all__ = ["agent_card", "answer"]

MODES = ["application/json", "text/plain"]


class _CallContext(DefaultServerCallContextBuilder):
    """The SDK's call context plus what the task handler needs: the HTTP request (the user's
    access, the app's context) and the assistant the route resolved."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state["request"] = request
        context.state["assistant"] = request.state.a2a_assistant
        return context


_dispatcher = JsonRpcDispatcher(RunTasks(), context_builder=_CallContext(), enable_v0_3_compat=True)


async def answer(request: Request, assistant: dict[str, Any]) -> Response:
    """One JSON-RPC request to `assistant`: its answer, or its SSE stream."""
    request.state.a2a_assistant = assistant
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


def agent_card(request: Request, assistant: dict[str, Any], url: str) -> dict[str, Any]:
    """The assistant as an agent at `url`: one skill (the graph), streaming, and the API key it
    asks for when the deployment's key guards the API. As JSON, with 0.3's fields too."""
    ctx = ctx_of(request)
    assistant_id, graph_id = assistant["assistant_id"], assistant["graph_id"]
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
    return agent_card_to_dict(card)
