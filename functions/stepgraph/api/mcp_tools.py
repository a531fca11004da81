"""/mcp: every assistant the caller may see is an MCP tool, served by the official `mcp` SDK over
Streamable HTTP in stateless JSON mode, the shape that works behind the Lambda Web Adapter: each
POST is answered on its own by whichever container gets it, and no session outlives it.

`tools/call` runs the assistant statelessly, as `POST /runs/wait` does (same engine path, same
authorization), and answers its output as `structuredContent` (validated by clients against the
tool's `outputSchema`) plus a JSON text block for clients that read text only. A run that fails is
`isError` with its error type and message; a run that stops on `interrupt()` keeps its thread and
says how to resume it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import mcp_types as types
from fastapi import HTTPException, Request
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from stepgraph import serde
from stepgraph.api.assistants import graph_schemas
from stepgraph.api.auth import access_of
from stepgraph.api.common import ctx_of
from stepgraph.api.runs import create_run, run_output, wait_for_end
from stepgraph.api.schemas import RunCreate
from stepgraph.engine import Context, cancel_run, delete_thread, matches_filter
from stepgraph.vocabulary import RunStatus

__all__ = ["McpEndpoint", "tool_name"]

logger = logging.getLogger(__name__)

PAGE_SIZE = 100  # tools per `tools/list` page, as on the peer
MAX_NAME = 128
# The key of the run's interrupts in its output (`runs.wait`'s body), declared in `outputSchema`.
INTERRUPT_KEY = "__interrupt__"
# LangChain message classes (`HumanMessage`, `AIMessageChunk`, ...) in a graph's JSON schema: each
# becomes this one compact schema, which both a client's `{"role", "content"}` and a stored message
# (`{"type": "ai", "content", ...}`) satisfy. The full ones run to 20 KB of `oneOf`.
_MESSAGE_DEF = re.compile(r"^[A-Z][A-Za-z]*Message(Chunk)?$")
MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Message",
    "description": "A chat message: its content and who sent it, as `role` (user, assistant, system, tool) "
    "or as LangChain's `type` (human, ai, system, tool).",
    "properties": {
        "role": {"type": "string"},
        "type": {"type": "string"},
        "content": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
            ]
        },
        "name": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["content"],
    "additionalProperties": True,
}
# Runs that ended without an output to answer: cancelled (`runs.cancel`), or past their deadline.
_UNFINISHED = {
    RunStatus.INTERRUPTED: ("Cancelled", "the run was cancelled before it finished"),
    RunStatus.TIMEOUT: ("Timeout", "the run waited on an interrupt past its deadline"),
}
_ANNOTATIONS = types.ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)


def tool_name(assistant_name: str) -> str:
    """The peer's tool name for an assistant: whitespace becomes `_`, other characters outside
    `[A-Za-z0-9_.-]` are dropped, at most 128 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]", "", re.sub(r"\s", "_", assistant_name))[:MAX_NAME]


def simplified_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A graph's JSON schema as a tool schema: an object at the root, LangChain's message classes
    folded into one `Message` definition, definitions nothing refers to any more dropped."""
    if not schema:
        return {"type": "object"}
    defs = dict(schema.get("$defs") or {})
    messages = {name for name in defs if _MESSAGE_DEF.match(name)}
    root = {k: v for k, v in schema.items() if k != "$defs"}
    if messages:
        root = _fold_messages(root, messages)
        defs = {name: _fold_messages(d, messages) for name, d in defs.items() if name not in messages}
        defs["Message"] = MESSAGE_SCHEMA
    root["type"] = "object"
    kept = _referenced(root, defs)
    if kept:
        root["$defs"] = {name: defs[name] for name in sorted(kept)}
    return root


def _message_ref(node: Any, messages: set[str]) -> bool:
    ref = node.get("$ref") if isinstance(node, dict) else None
    return isinstance(ref, str) and ref.removeprefix("#/$defs/") in messages


def _fold_messages(node: Any, messages: set[str]) -> Any:
    if isinstance(node, list):
        return [_fold_messages(item, messages) for item in node]
    if not isinstance(node, dict):
        return node
    if _message_ref(node, messages):
        return {"$ref": "#/$defs/Message"}
    for union in ("oneOf", "anyOf"):
        members = node.get(union)
        if isinstance(members, list) and members and all(_message_ref(m, messages) for m in members):
            rest = {k: v for k, v in node.items() if k != union}
            return {**_fold_messages(rest, messages), "$ref": "#/$defs/Message"}
    return {k: _fold_messages(v, messages) for k, v in node.items()}


def _referenced(root: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    """The definitions reachable from `root` through `$ref`s."""
    seen: set[str] = set()
    pending: list[Any] = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name in defs and name not in seen:
                    seen.add(name)
                    pending.append(defs[name])
            pending.extend(v for k, v in node.items() if k != "$ref")
    return seen


def _output_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The tool's `outputSchema`: the graph's output schema, when it describes an object (what
    `structuredContent` must be), with the interrupts a stopped run adds to its output."""
    if not schema or schema.get("type") != "object":
        return None
    output = simplified_schema(schema)
    output["properties"] = {
        **(output.get("properties") or {}),
        INTERRUPT_KEY: {
            "type": "array",
            "description": "Present when the run stopped on interrupt(): what it waits for.",
            "items": {"type": "object"},
        },
    }
    return output


def _visible_assistants(ctx: Context, filters: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every assistant of a served graph the caller may see, oldest first: a later assistant whose
    name normalises to a taken tool name is skipped, so a new one can never take over a tool."""
    assistants = [
        a
        for a in ctx.assistants.all()
        if a.get("graph_id") in ctx.graphs.specs and matches_filter(a.get("metadata"), filters)
    ]
    assistants.sort(key=lambda a: (str(a.get("created_at")), a["assistant_id"]))
    return assistants


def _tools(assistants: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    named: dict[str, dict[str, Any]] = {}
    for assistant in assistants:
        name = tool_name(str(assistant.get("name") or assistant["graph_id"]))
        if name and name not in named:
            named[name] = assistant
    return list(named.items())


def _tool_schemas(ctx: Context, graph_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(inputSchema, outputSchema) of a graph's tools, from what `GET /assistants/{id}/schemas` answers."""
    try:
        schemas = graph_schemas(graph_id, ctx.graphs.get(graph_id))
    except Exception:  # the user's graph can fail to import; the tool is listed, its runs report why
        logger.warning("graph %r does not load: its tools have no schemas", graph_id, exc_info=True)
        schemas = {}
    return simplified_schema(schemas.get("input_schema")), _output_schema(schemas.get("output_schema"))


def _page_of_tools(ctx: Context, page: list[tuple[str, dict[str, Any]]]) -> list[types.Tool]:
    schemas: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}  # each graph's, built once
    tools = []
    for name, assistant in page:
        graph_id = assistant["graph_id"]
        if graph_id not in schemas:
            schemas[graph_id] = _tool_schemas(ctx, graph_id)
        input_schema, output_schema = schemas[graph_id]
        title = str(assistant.get("name") or graph_id)
        tool = types.Tool(
            name=name,
            title=title,
            description=assistant.get("description") or f"Tool based on the {title} assistant",
            input_schema=input_schema,
            output_schema=output_schema,
            annotations=_ANNOTATIONS,
        )
        tools.append(tool)
    return tools


def _request(ctx: ServerRequestContext[Any, Any]) -> Request:
    """The HTTP request the message came in (the stateless transport always gives it)."""
    if not isinstance(ctx.request, Request):
        raise MCPError(types.INTERNAL_ERROR, "MCP is served over HTTP only")
    return ctx.request


def _refused(exc: HTTPException) -> MCPError:
    return MCPError(types.INVALID_REQUEST, f"{exc.status_code}: {exc.detail}")


async def _listed(request: Request) -> list[tuple[str, dict[str, Any]]]:
    """(tool name, assistant) of every tool the caller may use (the `assistants.search` handler)."""
    ctx = ctx_of(request)
    value: dict[str, Any] = {"graph_id": None, "metadata": {}, "limit": PAGE_SIZE, "offset": 0}  # as a search's
    try:
        filters = await access_of(request).aauthorize("assistants", "search", value)
    except HTTPException as exc:
        raise _refused(exc) from None
    assistants = await run_in_threadpool(_visible_assistants, ctx, filters)
    return _tools(assistants)


async def list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    request = _request(ctx)
    cursor = params.cursor if params else None
    try:
        offset = int(cursor) if cursor else 0
        if offset < 0:
            raise ValueError(cursor)
    except ValueError:
        raise MCPError(types.INVALID_PARAMS, f"Invalid cursor: {cursor!r}") from None
    listed = await _listed(request)
    page = listed[offset : offset + PAGE_SIZE]
    tools = await run_in_threadpool(_page_of_tools, ctx_of(request), page)
    more = offset + PAGE_SIZE < len(listed)
    return types.ListToolsResult(tools=tools, next_cursor=str(offset + PAGE_SIZE) if more else None)


async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    request = _request(ctx)
    assistant = dict(await _listed(request)).get(params.name)
    if assistant is None:
        raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
    return await run_assistant(request, assistant, params.arguments or {})


async def run_assistant(request: Request, assistant: dict[str, Any], arguments: dict[str, Any]) -> types.CallToolResult:
    """A stateless run of the assistant with the arguments as input, waited for as `POST
    /runs/wait` waits. Its thread is deleted afterwards, unless the run stopped on an interrupt:
    then the thread is what a resume continues."""
    ctx = ctx_of(request)
    body = RunCreate.model_validate(
        {"assistant_id": assistant["assistant_id"], "input": arguments, "on_completion": "keep"}
    )
    try:
        run = await run_in_threadpool(
            create_run, ctx, str(uuid.uuid4()), body, stateless=True, access=access_of(request)
        )
    except HTTPException as exc:  # refused by the user's authorization, or a run too large
        return _error_result(HTTPStatus(exc.status_code).phrase, str(exc.detail))
    try:
        await wait_for_end(ctx, run)
    except asyncio.CancelledError:
        # The client went away: nobody will read the output, so the run stops (its thread stays,
        # as after a disconnected `runs.wait`).
        await asyncio.shield(run_in_threadpool(cancel_run, ctx, run, "interrupt"))
        raise
    output = await run_in_threadpool(run_output, ctx, run)
    ended = await run_in_threadpool(ctx.runs.get, run["thread_id"], run["run_id"])
    interrupted = isinstance(output, dict) and INTERRUPT_KEY in output
    if not interrupted:
        await run_in_threadpool(delete_thread, ctx, run["thread_id"])
    if isinstance(output, dict) and "__error__" in output:
        error = output["__error__"] or {}
        return _error_result(str(error.get("error") or "Error"), str(error.get("message") or ""))
    status = (ended or run).get("status")
    if status in _UNFINISHED:
        return _error_result(*_UNFINISHED[status])
    content: list[types.ContentBlock] = [types.TextContent(text=serde.dumps_str(output))]
    if interrupted:
        content.append(types.TextContent(text=_resume_hint(run, assistant, output[INTERRUPT_KEY])))
    return types.CallToolResult(
        content=content,
        structured_content=output if isinstance(output, dict) else None,
        _meta={"thread_id": run["thread_id"], "run_id": run["run_id"]} if interrupted else None,
    )


def _error_result(error: str, message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=f"{error}: {message}" if message else error)],
        structured_content={"error": error, "message": message},
        is_error=True,
    )


def _resume_hint(run: dict[str, Any], assistant: dict[str, Any], interrupts: list[Any]) -> str:
    values = [i.get("value") if isinstance(i, dict) else i for i in interrupts]
    return (
        f"The run stopped on an interrupt and waits for input: {serde.dumps_str(values)}. "
        f"It is kept on thread {run['thread_id']}: resume it with POST /threads/{run['thread_id']}/runs/wait "
        f'{{"assistant_id": "{assistant["assistant_id"]}", "command": {{"resume": <your answer>}}}} '
        "(langgraph-sdk: client.runs.wait(thread_id, assistant_id, command={'resume': ...}))."
    )


def mcp_server(version: str) -> Server[Any]:
    return Server("stepgraph", version=version, on_list_tools=list_tools, on_call_tool=call_tool)


class McpEndpoint:
    """The `/mcp` ASGI endpoint. Each request gets its own stateless session manager, entered and
    left around it: nothing is held between requests (a Lambda container may freeze between
    them), and nothing needs the app's lifespan."""

    def __init__(self, version: str) -> None:
        self.server = mcp_server(version)

    @asynccontextmanager
    async def _manager(self) -> AsyncIterator[StreamableHTTPSessionManager]:
        manager = StreamableHTTPSessionManager(self.server, json_response=True, stateless=True)
        async with manager.run():
            yield manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "GET":
            # The SDK would open a server-to-client SSE stream that nothing ever writes to and
            # that holds a Lambda for its whole timeout; the spec lets a server answer 405.
            await JSONResponse(
                {"detail": "This MCP server sends no server-initiated messages: POST requests only."},
                status_code=405,
                headers={"Allow": "POST"},
            )(scope, receive, send)
            return
        async with self._manager() as manager:
            await manager.handle_request(scope, receive, send)
