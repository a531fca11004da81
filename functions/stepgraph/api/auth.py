"""Who may call the API, as on the Agent Server.

- `auth` in langgraph.json: its `langgraph_sdk.Auth` authenticates every request but `/ok`
  (`@auth.authenticate`), and each route asks its authorization handlers (`@auth.on...`) about
  the resource and action it serves (`Access`): they may refuse (403), stamp the value, or
  return a metadata filter that hides what does not match (404, as for a missing resource).
- Otherwise, deployed: every request but `/ok` carries the deployment's API key in `x-api-key`
  (a Secrets Manager secret the template creates), compared in constant time.
- Otherwise (`require_api_key` off: `stepgraph dev`, as `langgraph dev`): nobody is asked.

CORS (`http.cors`) wraps it all, so a browser's preflight needs no credentials.
"""

from __future__ import annotations

import hmac
import inspect
import logging
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

import anyio.from_thread
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from langgraph_sdk import Auth
from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, SimpleUser
from starlette.concurrency import run_in_threadpool
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.routing import compile_path

from stepgraph.engine import AuthUser, ConfigError, Context, metadata_filter, user_fields

__all__ = ["OPEN", "Access", "access_of", "install_auth"]

logger = logging.getLogger(__name__)

# Answered without credentials: the health check.
OPEN_PATHS = frozenset({"/ok"})
API_KEY_HEADER = "x-api-key"
# What `@auth.authenticate` may ask for, by parameter name (langgraph_sdk.Auth.authenticate).
AUTHENTICATE_PARAMS = ("request", "path", "method", "path_params", "query_params", "headers", "authorization")


class Refused(AuthenticationError):
    """A request the authentication middleware answers itself, with the peer's error body."""

    def __init__(self, status_code: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status_code, self.detail, self.headers = status_code, detail, dict(headers or {})


def _refused(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    if isinstance(exc, Refused):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": str(exc) or "Unauthorized"}, status_code=401)


class Credentials(AuthCredentials):
    """The user's permissions (`scopes`) and the JSON fields a run stores for its graph."""

    def __init__(self, scopes: list[str], fields: dict[str, Any]) -> None:
        super().__init__(scopes)
        self.fields = fields


class ApiKeyBackend(AuthenticationBackend):
    """The deployed default: the secret's value in `x-api-key`. Read from Secrets Manager on the
    first request and kept for the container's life (a rotated key reaches new containers)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._key: bytes | None = None

    def _fetch(self) -> bytes:
        reply = self.ctx.clients.secretsmanager.get_secret_value(SecretId=self.ctx.settings.api_key_secret_arn)
        return str(reply["SecretString"]).encode()

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, Any] | None:
        if conn.scope["path"] in OPEN_PATHS:
            return None
        if self._key is None:  # two first requests at once both read it: harmless
            self._key = await run_in_threadpool(self._fetch)
        given = conn.headers.get(API_KEY_HEADER)
        if given is None or not hmac.compare_digest(given.encode(), self._key):
            raise Refused(401, f"Missing or invalid API key: send the deployment's key in {API_KEY_HEADER}")
        return AuthCredentials(["authenticated"]), SimpleUser("api-key")


class CustomAuthBackend(AuthenticationBackend):
    """`@auth.authenticate` of the project's auth.py, given the parameters it names."""

    def __init__(self, auth: Auth) -> None:
        self.handler = auth._authenticate_handler  # the SDK's contract with servers
        self.params = _authenticate_params(self.handler) if self.handler is not None else set()
        if self.handler is None:
            logger.warning("auth.py registers no @auth.authenticate: requests are not authenticated")

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, Any] | None:
        if conn.scope["path"] in OPEN_PATHS or self.handler is None:
            return None
        try:
            returned = await self.handler(**self._arguments(conn))
            fields = user_fields(returned)
        except Auth.exceptions.HTTPException as exc:
            raise Refused(exc.status_code, exc.detail, exc.headers) from None
        except AssertionError as exc:  # the peer's other way to refuse a request
            raise Refused(403, str(exc) or "Forbidden") from None
        except Exception:  # the user's code can raise anything; refused, never let through
            logger.exception("auth.py: authenticate failed on %s %s; answered 401", conn.scope["method"], conn.url.path)
            raise Refused(401, "Unauthorized") from None
        # Handlers get the user as authenticate made it; a user id or a dict becomes a user.
        user = AuthUser(fields) if isinstance(returned, (str, Mapping)) else returned
        return Credentials(fields["permissions"], fields), user

    def _arguments(self, conn: HTTPConnection) -> dict[str, Any]:
        scope = conn.scope
        values: dict[str, Callable[[], Any]] = {
            "request": lambda: Request(scope),  # its body cannot be read here: the route reads it
            "path": lambda: scope["path"],
            "method": lambda: scope["method"],
            "path_params": lambda: _path_params(scope),
            "query_params": lambda: dict(conn.query_params),
            "headers": lambda: dict(scope["headers"]),  # bytes names (lower case) and values
            "authorization": lambda: conn.headers.get("authorization"),
        }
        return {name: values[name]() for name in self.params}


def _authenticate_params(handler: Any) -> set[str]:
    """The parameters `authenticate` takes, checked now: one stepgraph cannot give is a
    start-up error, not a 500 on every request."""
    names: set[str] = set()
    for param in inspect.signature(handler).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            return set(AUTHENTICATE_PARAMS)
        if param.name in AUTHENTICATE_PARAMS:
            names.add(param.name)
        elif param.default is param.empty and param.kind is not param.VAR_POSITIONAL:
            raise ConfigError(f"auth: authenticate takes {param.name!r}; it may take {', '.join(AUTHENTICATE_PARAMS)}")
    return names


def _path_params(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    """The route's path parameters. Authentication runs before routing (and FastAPI resolves
    included routers lazily), so the path is matched against the app's OpenAPI paths."""
    app = scope.get("app")
    if not isinstance(app, FastAPI):
        return {}
    method = scope["method"].lower()
    for template, operations in app.openapi()["paths"].items():
        if method not in operations:
            continue
        regex, _, convertors = compile_path(template)
        match = regex.match(scope["path"])
        if match:
            return {name: convertors[name].convert(value) for name, value in match.groupdict().items()}
    return {}


@dataclass(frozen=True)
class Access:
    """What the request's user may do: each route asks before it reads or writes a resource.

    `authorize` answers None (allowed, no filter) or the filter the resource's metadata must
    pass; it raises the 403 of a handler that returned False and the HTTPException a handler
    raised. Without custom auth it answers None at once.
    """

    auth: Auth | None = None
    user: Any = None  # `ctx.user` of the handlers
    fields: dict[str, Any] | None = None  # the user as a run stores it (None: no user)
    permissions: tuple[str, ...] = ()

    async def aauthorize(self, resource: str, action: str, value: dict[str, Any]) -> dict[str, Any] | None:
        if self.auth is None:
            return None
        handler = _handler(self.auth, resource, action)
        if handler is None:
            return None  # as on the peer: no handler for it, nothing to refuse
        context = Auth.types.AuthContext(
            permissions=list(self.permissions),
            user=self.user,
            resource=cast(Any, resource),
            action=cast(Any, action),
        )
        try:
            result = await handler(ctx=context, value=value)
        except Auth.exceptions.HTTPException as exc:
            raise HTTPException(exc.status_code, exc.detail, headers=dict(exc.headers or {}) or None) from None
        except AssertionError as exc:  # the peer's docs refuse with `assert` (e.g. a store namespace)
            raise HTTPException(403, str(exc) or "Forbidden") from None
        if result is None or result is True:
            return None
        if result is False:
            raise HTTPException(403, "Forbidden")
        if isinstance(result, Mapping):
            return metadata_filter(result) or None
        raise TypeError(
            f"auth handler for {resource}.{action} returned a {type(result).__name__}: "
            "it must return None, a bool or a metadata filter"
        )

    def authorize(self, resource: str, action: str, value: dict[str, Any]) -> dict[str, Any] | None:
        """`aauthorize` from a worker thread (the sync routes): the handlers run on the server's
        event loop, as the user's async code expects."""
        if self.auth is None:
            return None
        return anyio.from_thread.run(self.aauthorize, resource, action, value)


OPEN = Access()


def _handler(auth: Auth, resource: str, action: str) -> Any:
    """The most specific handler: resource and action, the resource's, the action's, global."""
    for key in ((resource, action), (resource, "*"), ("*", action)):
        handlers = auth._handlers.get(key)
        if handlers:
            return handlers[-1]
    return auth._global_handlers[-1] if auth._global_handlers else None


def access_of(request: Request) -> Access:
    auth: Auth | None = getattr(request.app.state, "auth", None)
    if auth is None:
        return OPEN
    credentials = request.scope.get("auth")
    fields = credentials.fields if isinstance(credentials, Credentials) else None
    scopes = tuple(credentials.scopes) if isinstance(credentials, AuthCredentials) else ()
    return Access(auth, request.scope.get("user"), fields, scopes)


def install_auth(app: FastAPI, ctx: Context) -> None:
    """Authentication by the project's auth.py, else by the deployment's API key (unless the
    local runtime turned it off); then CORS from `http.cors`, outermost."""
    auth = ctx.graphs.load_auth()
    app.state.auth = auth
    if auth is not None:
        app.add_middleware(AuthenticationMiddleware, backend=CustomAuthBackend(auth), on_error=_refused)
    elif ctx.settings.require_api_key:
        if not ctx.settings.api_key_secret_arn:
            raise ConfigError(
                "the API needs an API key (STEPGRAPH_API_KEY_SECRET_ARN, set by the template) or `auth` in "
                "langgraph.json; STEPGRAPH_REQUIRE_API_KEY=0 serves it to anyone who can reach it"
            )
        app.add_middleware(AuthenticationMiddleware, backend=ApiKeyBackend(ctx), on_error=_refused)
    if ctx.graphs.cors is not None:
        app.add_middleware(CORSMiddleware, **ctx.graphs.cors)
