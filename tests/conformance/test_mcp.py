"""Every assistant is an MCP tool: the `mcp` SDK's own client (Streamable HTTP, `ClientSession`)
against the local server's `/mcp`, as an MCP host (Claude Desktop, an IDE, another agent) uses it.
The client validates each result's `structuredContent` against the tool's `outputSchema` itself.
(Custom auth on /mcp: test_sdk_auth.py; the API key, `http.disable_mcp`, pagination and names:
tests/functional/test_api_auth.py; the built API artifact: tests/functional/test_build.py.)"""

from __future__ import annotations

import asyncio
import json

import mcp_types as types
import pytest
from harness import mcp_session
from langgraph_sdk import get_client
from stepgraph.api.mcp_tools import simplified_schema
from stepgraph.engine import system_assistant_id

# The async-nodes server only: a tool call is a `runs.wait` (which every flavour's tests cover) seen
# through the MCP layer, and the layer does not depend on how the graph's nodes are written.
pytestmark = [
    pytest.mark.asyncio(loop_scope="function"),
    pytest.mark.parametrize("flavor", ["async"], indirect=True),
]


def text_of(result: types.CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, types.TextContent)]


async def test_each_graph_is_a_tool_with_its_schemas(server):
    client = get_client(url=server.url)
    async with mcp_session(server.url) as session:
        assert await session.send_ping() is not None
        listed = await session.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert {"chain", "approval", "failing", "chat", "react"} <= set(tools)
    assert listed.next_cursor is None
    chain = tools["chain"]
    assert chain.title == "chain" and chain.description == "Tool based on the chain assistant"
    schemas = await client.assistants.get_schemas(system_assistant_id("chain"))
    assert chain.input_schema == schemas["input_schema"] == {**schemas["input_schema"], "type": "object"}
    assert chain.output_schema is not None
    assert chain.output_schema["properties"]["items"] == schemas["output_schema"]["properties"]["items"]
    # A messages graph's 20 KB of LangChain message classes become one `Message` definition.
    chat = tools["chat"]
    chat_schemas = await client.assistants.get_schemas(system_assistant_id("chat"))
    assert chat.input_schema == simplified_schema(chat_schemas["input_schema"])
    assert chat.input_schema["properties"]["messages"]["items"] == {"$ref": "#/$defs/Message"}
    assert set(chat.input_schema["$defs"]) == {"Message"}
    assert len(json.dumps(chat.input_schema)) < 2_000


async def test_calling_a_tool_answers_what_runs_wait_answers(server):
    client = get_client(url=server.url)
    expected = await client.runs.wait(None, "chain", input={"items": ["x"]})
    assert expected == {"items": ["x", "a", "b", "c"]}
    async with mcp_session(server.url) as session:
        result = await session.call_tool("chain", {"items": ["x"]})
        assert not result.is_error
        assert result.structured_content == expected
        assert [json.loads(text) for text in text_of(result)] == [expected]  # for text-only clients
        # A chat graph: the messages come back as JSON that the tool's own outputSchema accepts.
        chat = await session.call_tool("chat", {"messages": [{"role": "user", "content": "hi"}]})
        assert not chat.is_error and chat.structured_content is not None
        assert [m["content"] for m in chat.structured_content["messages"]][:2] == ["hi", "You said: hi"]


async def test_a_run_that_raises_is_a_tool_error_with_its_type_and_message(server):
    async with mcp_session(server.url) as session:
        result = await session.call_tool("failing", {"items": []})
    assert result.is_error
    assert text_of(result) == ["ValueError: boom: this node always fails"]
    assert result.structured_content == {"error": "ValueError", "message": "boom: this node always fails"}


async def test_an_interrupted_run_says_so_and_how_to_resume(server):
    client = get_client(url=server.url)
    async with mcp_session(server.url) as session:
        result = await session.call_tool("approval", {"items": []})
    assert not result.is_error and result.structured_content is not None and result.meta is not None
    [interrupt] = result.structured_content["__interrupt__"]
    assert interrupt["value"] == {"question": "approve?", "items": ["draft"]}
    assert result.structured_content["items"] == ["draft"]
    thread_id = result.meta["thread_id"]
    hint = text_of(result)[1]
    assert "interrupt" in hint and thread_id in hint and '"question":"approve?"' in hint
    # The stateless run's thread is kept for the resume the hint describes.
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    resumed = await client.runs.wait(thread_id, "approval", command={"resume": "yes"})
    assert resumed == {"items": ["draft", "review:yes", "published"]}


async def test_a_cancelled_run_is_a_tool_error(server):
    client = get_client(url=server.url)
    steps = 987_654  # minutes of supersteps, and how this test finds its run's thread
    async with mcp_session(server.url) as session:
        call = asyncio.create_task(session.call_tool("loop", {"steps": steps}))
        deadline = asyncio.get_running_loop().time() + 30
        while not (threads := await client.threads.search(status="busy", values={"steps": steps})):
            assert asyncio.get_running_loop().time() < deadline and not call.done(), "the tool's run never ran"
            await asyncio.sleep(0.05)
        [run] = await client.runs.list(threads[0]["thread_id"])
        await client.runs.cancel(threads[0]["thread_id"], run["run_id"])
        result = await asyncio.wait_for(call, 30)
    assert result.is_error
    assert text_of(result) == ["Cancelled: the run was cancelled before it finished"]
