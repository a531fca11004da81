"""The HTTP API: the LangGraph Agent Server's routes and error shapes, over our engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from opentelemetry.trace import SpanKind
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stepgraph import tracing
from stepgraph.api import a2a, assistants, crons, protocol, runs, store, thread_stream, threads
from stepgraph.api.assistants import ensure_system_assistants
from stepgraph.api.auth import install_auth
from stepgraph.api.billing import BilledRequests
from stepgraph.client_errors import internal_error
from stepgraph.engine import ConfigError, Context, DocumentTooLarge, WebhookUrlRefused, queue_counts
from stepgraph.vocabulary import RunStatus


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


# What FastAPI answers (400) when decoding a body fails other than as malformed JSON.
_FASTAPI_UNPARSABLE = "There was an error parsing the body"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {error.get('msg')}" if loc else str(error.get("msg")))
    return "; ".join(parts) or "Invalid request"


class _ImportedOnFirstRequest:
    """An ASGI endpoint built on its first request: the `mcp` SDK is not imported by every cold
    start of the API function, only by the first MCP request a container serves."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self.build = build
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is None:  # two first requests at once may both build it: harmless
            app = self.app = await run_in_threadpool(self.build)
        await app(scope, receive, send)


class _TraceRequests:
    """The API request's span, continuing the caller's `traceparent` (or `X-Amzn-Trace-Id`):
    everything the request starts (admission, the run's execution, its webhook) is under it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        name = f"{scope['method']} {scope['path']}"
        attributes = {"http.request.method": scope["method"], "url.path": scope["path"]}
        with tracing.span(name, parent=headers, kind=SpanKind.SERVER, attributes=attributes) as span:

            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            await self.app(scope, receive, send_traced)


def _mcp_endpoint() -> ASGIApp:
    from stepgraph.api.mcp_tools import McpEndpoint

    return McpEndpoint(_version("stepgraph"))


def create_app(ctx: Context) -> FastAPI:
    """The API over `ctx`. Raises ConfigError when it cannot be served as configured: an auth.py
    that does not load, or (deployed) no API key and no auth."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(ensure_system_assistants, ctx)
        yield

    app = FastAPI(title="stepgraph", version=_version("stepgraph"), lifespan=lifespan)
    app.state.ctx = ctx
    app.add_middleware(BilledRequests, ctx=ctx)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return JSONResponse({"detail": "Invalid JSON in request body"}, status_code=422)
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_UNPARSABLE:
            # Not UTF-8, or nested past the parser's recursion limit: the peer's 422.
            return JSONResponse({"detail": "Invalid JSON in request body"}, status_code=422)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(DocumentTooLarge)
    async def _too_large(request: Request, exc: DocumentTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(WebhookUrlRefused)
    async def _webhook_refused(request: Request, exc: WebhookUrlRefused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback (and whatever an AWS error says: ARNs, the account) stays in the logs.
        return JSONResponse({"detail": internal_error(exc, f"{request.method} {request.url.path}")}, status_code=500)

    @app.get("/ok", tags=["meta"])
    @app.get("/", include_in_schema=False)
    def ok() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/info", tags=["meta"])
    def info() -> dict[str, Any]:
        return {
            "version": _version("stepgraph"),
            "langgraph_py_version": _version("langgraph"),
            "flags": {"assistants": True, "crons": True, "langsmith": False, "langsmith_tracing_replicas": False},
            "host": {"kind": "stepgraph", "project_id": None, "revision_id": None, "tenant_id": None},
            "step_mode": ctx.settings.step_mode,
        }

    @app.get("/metrics", tags=["meta"])
    async def metrics(format: str = "prometheus") -> Response:
        """Queue depth: Prometheus text, or the peer's JSON with `?format=json`. Workers are
        Lambda invocations, so there is no pool to report, only how many runs are running."""
        queue = await run_in_threadpool(queue_counts, ctx)
        if format == "json":
            workers = {"active": queue["n_running"], "available": None, "max": None}
            return JSONResponse({"queue": queue, "workers": workers})
        text = "".join(
            f"# HELP lg_api_num_{name}_runs Runs {name} across every thread.\n"
            f"# TYPE lg_api_num_{name}_runs gauge\n"
            f"lg_api_num_{name}_runs {queue['n_' + name]}\n"
            for name in (RunStatus.PENDING, RunStatus.RUNNING)
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    if "mcp" not in ctx.graphs.disabled:
        # Behind the same middleware (auth, CORS) as every route; not in the OpenAPI document.
        app.router.routes.append(Route("/mcp", _ImportedOnFirstRequest(_mcp_endpoint), include_in_schema=False))
    app.include_router(assistants.router)
    app.include_router(threads.router)
    app.include_router(crons.router)  # before runs: /runs/crons/... are not runs
    app.include_router(runs.router)
    app.include_router(thread_stream.router)
    app.include_router(protocol.router)
    app.include_router(store.router)
    if "a2a" not in ctx.graphs.disabled:
        app.include_router(a2a.router)
    install_auth(app, ctx)
    app.add_middleware(_TraceRequests)  # outermost: refused requests are traced too
    return app
