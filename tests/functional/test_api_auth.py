"""Who may call the API, in-process against the emulated stack: the deployed default (the
template's API key, from Secrets Manager, in `x-api-key`), CORS from `http.cors`, and the
Agent Server's contract for a custom `auth.py` (which handler answers, what a refusal looks
like, what `authenticate` is given)."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import mcp_types as types
import pytest
from harness import mcp_session
from mcp.shared.exceptions import MCPError
from stepgraph.api import create_app
from stepgraph.api.threads import new_thread
from stepgraph.engine import ConfigError, Context, system_assistant_id
from stepgraph_local.runtime import LocalRuntime

ROOT = Path(__file__).resolve().parents[2]
CHAIN = f"{ROOT / 'examples' / 'graphs.py'}:chain"

AUTH = textwrap.dedent(
    """
    import json

    from langgraph_sdk import Auth

    auth = Auth()


    @auth.authenticate
    async def authenticate(authorization, path, method, path_params, query_params, headers):
        if authorization == "Bearer bug":
            raise RuntimeError("a bug in auth.py")
        assert authorization != "Bearer assert", "not you"
        if authorization != "Bearer ok":
            raise Auth.exceptions.HTTPException(401, "who are you?", headers={"WWW-Authenticate": "Bearer"})
        request = {"path": path, "method": method, "path_params": path_params, "query_params": query_params}
        return {"identity": "u", "request": request, "agent": headers[b"user-agent"].decode()}


    @auth.on
    async def everything_else(ctx, value):
        return False


    @auth.on.threads
    async def threads(ctx, value):
        return {"label": "mine"}


    @auth.on.threads.create
    async def create_thread(ctx, value):
        value["metadata"].update(label="mine", who=ctx.user.identity, tags=["x", "y"])


    @auth.on.threads.delete
    async def delete_thread(ctx, value):
        seen = {**ctx.user["request"], "agent": ctx.user["agent"], "value": value}
        raise Auth.exceptions.HTTPException(418, json.dumps(seen))


    @auth.on(actions="search")
    async def searches(ctx, value):
        return {"tags": {"$contains": ["x", "y"]}}
    """
)


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    started = LocalRuntime().start()
    yield started
    started.stop()


def project(tmp_path: Path, **config: Any) -> str:
    """A langgraph.json serving the examples' `chain` with `config`'s extra keys."""
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"chain": CHAIN}, **config}))
    return str(path)


def api(runtime: LocalRuntime, **settings: Any) -> httpx.AsyncClient:
    app = create_app(Context(dataclasses.replace(runtime.ctx.settings, **settings)))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_deployed_api_answers_only_with_the_deployment_key(runtime):
    arn = runtime.ctx.settings.api_key_secret_arn
    assert arn, "the template's ApiKeySecret reaches the API's settings"
    key = runtime.aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    async with api(runtime, require_api_key=True) as http:
        assert (await http.get("/ok")).status_code == 200
        for headers in ({}, {"x-api-key": "not-the-key"}, {"x-api-key": key[:-1]}):
            refused = await http.post("/threads/search", json={}, headers=headers)
            assert refused.status_code == 401, headers
            assert "x-api-key" in refused.json()["detail"]
        for method, path in (("GET", "/info"), ("GET", "/openapi.json"), ("GET", "/"), ("POST", "/threads")):
            assert (await http.request(method, path)).status_code == 401, path
        answered = await http.post("/threads/search", json={}, headers={"x-api-key": key})
        assert answered.status_code == 200 and isinstance(answered.json(), list)


def _broken(*args: Any) -> None:
    raise RuntimeError("table stepgraph-Runs-123 is gone")


async def test_a2a_is_behind_the_key_says_so_in_its_card_and_http_disable_a2a_removes_it(runtime, tmp_path):
    arn = runtime.ctx.settings.api_key_secret_arn
    key = runtime.aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    card_path = "/a2a/chain/.well-known/agent-card.json"
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}}
    async with api(runtime, require_api_key=True, config_path=project(tmp_path)) as http:
        assert (await http.get(card_path)).status_code == 401
        assert (await http.post("/a2a/chain", json=rpc)).status_code == 401
        card = (await http.get(card_path, headers={"x-api-key": key})).json()
        scheme = card["securitySchemes"]["apiKey"]
        assert scheme["apiKeySecurityScheme"] == {"location": "header", "name": "x-api-key", "description": ANY}
        assert (scheme["in"], scheme["name"], scheme["type"]) == ("header", "x-api-key", "apiKey")  # 0.3's form
        answered = await http.post("/a2a/chain", json=rpc, headers={"x-api-key": key})
        assert answered.json()["error"]["code"] == -32001  # task not found
        # What breaks inside is A2A's internal error, without its text.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("stepgraph.api.a2a_tasks._load_task", _broken)
            broken = (await http.post("/a2a/chain", json=rpc, headers={"x-api-key": key})).json()["error"]
        assert broken["code"] == -32603 and re.fullmatch(r"Internal error \(id [0-9a-f]{32}\)", broken["message"])
    async with api(runtime, config_path=project(tmp_path, http={"disable_a2a": True})) as http:
        assert (await http.get(card_path)).status_code == 404
        assert (await http.post("/a2a/chain", json=rpc)).status_code == 404
        assert (await http.get("/.well-known/agent-card.json", params={"assistant_id": "chain"})).status_code == 404


def test_deployed_api_without_a_key_or_auth_does_not_start(runtime):
    with pytest.raises(ConfigError, match="STEPGRAPH_API_KEY_SECRET_ARN"):
        create_app(Context(dataclasses.replace(runtime.ctx.settings, require_api_key=True, api_key_secret_arn="")))


def test_an_auth_file_that_is_missing_is_a_start_up_error(runtime, tmp_path):
    config = project(tmp_path, auth={"path": "./auth.py:auth"})
    with pytest.raises(ConfigError, match=r"auth: .*auth\.py does not exist"):
        create_app(Context(dataclasses.replace(runtime.ctx.settings, config_path=config)))


async def test_cors_from_langgraph_json_answers_preflights_before_authentication(runtime, tmp_path):
    cors = {"allow_origins": ["https://app.example"], "allow_methods": ["*"], "allow_headers": ["x-api-key"]}
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    config = project(tmp_path, http={"cors": cors})
    async with api(runtime, require_api_key=True, config_path=config) as http:
        answered = await http.options("/threads/search", headers=preflight)
        assert answered.status_code == 200
        assert answered.headers["access-control-allow-origin"] == "https://app.example"
        other = await http.options("/threads/search", headers={**preflight, "Origin": "https://evil.example"})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        # A refusal carries the headers a browser needs to read it.
        refused = await http.post("/threads/search", json={}, headers={"Origin": "https://app.example"})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "https://app.example"
    async with api(runtime, require_api_key=False) as http:  # no http.cors: no CORS at all
        answered = await http.options("/threads/search", headers=preflight)
        assert "access-control-allow-origin" not in answered.headers


async def test_custom_auth_follows_the_agent_servers_contract(runtime, tmp_path):
    (tmp_path / "auth.py").write_text(AUTH)
    config = project(tmp_path, auth={"path": "./auth.py:auth"})
    async with api(runtime, require_api_key=True, config_path=config) as http:
        # authenticate: its HTTPException as it raised it, an assertion 403, anything else 401.
        refused = await http.get("/info", headers={"Authorization": "Bearer nope"})
        assert (refused.status_code, refused.json()) == (401, {"detail": "who are you?"})
        assert refused.headers["www-authenticate"] == "Bearer"
        asserted = await http.get("/info", headers={"Authorization": "Bearer assert"})
        assert (asserted.status_code, asserted.json()) == (403, {"detail": "not you"})
        bug = await http.get("/info", headers={"Authorization": "Bearer bug"})
        assert (bug.status_code, bug.json()) == (401, {"detail": "Unauthorized"})
        assert (await http.get("/ok")).status_code == 200

        http.headers.update({"Authorization": "Bearer ok", "User-Agent": "tester/1"})
        # threads.create beats the threads handler (it stamps), which beats the global one.
        thread = (await http.post("/threads", json={"metadata": {"label": "theirs"}})).json()
        assert thread["metadata"] == {"label": "mine", "who": "u", "tags": ["x", "y"]}
        thread_id = thread["thread_id"]
        assert (await http.get(f"/threads/{thread_id}")).status_code == 200
        other = str(uuid.uuid4())
        new_thread(runtime.ctx, other, {"label": "theirs", "tags": ["x"]})
        assert (await http.get(f"/threads/{other}")).json() == {"detail": "Thread not found"}
        found = (await http.post("/threads/search", json={"limit": 1000})).json()
        assert thread_id in {t["thread_id"] for t in found} and other not in {t["thread_id"] for t in found}
        # ("*", "search") answers assistants.search; the global handler, anything unhandled.
        assert (await http.post("/assistants/search", json={})).json() == []
        refused = await http.get(f"/assistants/{system_assistant_id('chain')}")
        assert (refused.status_code, refused.json()) == (403, {"detail": "Forbidden"})
        # authenticate is given the request; a handler's HTTPException is the answer.
        teapot = await http.delete(f"/threads/{thread_id}?why=test")
        assert teapot.status_code == 418
        assert json.loads(teapot.json()["detail"]) == {
            "path": f"/threads/{thread_id}",
            "method": "DELETE",
            "path_params": {"thread_id": thread_id},
            "query_params": {"why": "test"},
            "agent": "tester/1",
            "value": {"thread_id": thread_id},
        }
        assert (await http.get(f"/threads/{thread_id}")).status_code == 200


async def test_mcp_answers_only_with_the_deployment_key(runtime):
    key = runtime.aws.client("secretsmanager").get_secret_value(SecretId=runtime.ctx.settings.api_key_secret_arn)
    app = create_app(Context(dataclasses.replace(runtime.ctx.settings, require_api_key=True)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        for headers in ({}, {"x-api-key": "not-the-key"}):
            refused = await http.post("/mcp", json=ping, headers={"Accept": "application/json", **headers})
            assert refused.status_code == 401 and "x-api-key" in refused.json()["detail"]
    async with mcp_session("http://api", {"x-api-key": key["SecretString"]}, app=app) as session:
        assert "chain" in {tool.name for tool in (await session.list_tools()).tools}


async def test_http_disable_mcp_in_langgraph_json_removes_it(runtime, tmp_path):
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"Accept": "application/json"}
    async with api(runtime, config_path=project(tmp_path, http={"disable_mcp": False, "disable_a2a": True})) as http:
        assert (await http.post("/mcp", json=ping, headers=accept)).json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
        # Stateless: no server-to-client stream to open (it would hold a Lambda for its timeout).
        assert (await http.get("/mcp", headers={"Accept": "text/event-stream"})).status_code == 405
    async with api(runtime, config_path=project(tmp_path, http={"disable_mcp": True})) as http:
        assert (await http.post("/mcp", json=ping, headers=accept)).status_code == 404
    config = project(tmp_path, http={"disable_mcp": "yes"})
    with pytest.raises(ConfigError, match=r"'http\.disable_mcp' must be true or false"):
        create_app(Context(dataclasses.replace(runtime.ctx.settings, config_path=config)))


async def test_mcp_lists_a_page_of_100_tools_named_as_the_peer_names_them(runtime, tmp_path):
    app = create_app(Context(dataclasses.replace(runtime.ctx.settings, config_path=project(tmp_path))))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        for i in range(101):
            created = await http.post("/assistants", json={"graph_id": "chain", "name": f"page {i}: #{i}!"})
            assert created.status_code == 200
        # Two assistants whose names normalise alike: the older one keeps the tool name.
        for age in ("older", "newer"):
            twin = {"graph_id": "chain", "name": "twin tool", "description": age}
            assert (await http.post("/assistants", json=twin)).status_code == 200
    async with mcp_session("http://api", app=app) as session:
        first = await session.list_tools()
        assert len(first.tools) == 100 and first.next_cursor == "100"
        rest = await session.list_tools(params=types.PaginatedRequestParams(cursor=first.next_cursor))
        assert rest.next_cursor is None
        # The peer's JSON-RPC errors: invalid params for a tool that is not listed.
        with pytest.raises(MCPError) as unknown:
            await session.call_tool("page_101_101", {})
        assert (unknown.value.code, unknown.value.message) == (types.INVALID_PARAMS, "Unknown tool: page_101_101")
    names = [tool.name for tool in first.tools + rest.tools]
    assert len(names) == len(set(names))
    assert {f"page_{i}_{i}" for i in range(101)} | {"twin_tool"} <= set(names)
    [twin] = [tool for tool in rest.tools if tool.name == "twin_tool"]
    assert (twin.title, twin.description) == ("twin tool", "older")
