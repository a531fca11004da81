"""`stepgraph dev --config` serves any langgraph.json whose graphs import from its own folder."""

from __future__ import annotations

import textwrap

import httpx
import pytest
from harness import Server
from langgraph_sdk import get_client

pytestmark = pytest.mark.asyncio(loop_scope="function")

GRAPH = textwrap.dedent(
    """
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    from agent.helpers import shout


    class State(TypedDict, total=False):
        text: str


    def loud(state: State) -> State:
        return {"text": shout(state["text"])}


    builder = StateGraph(State)
    builder.add_node("loud", loud)
    builder.add_edge(START, "loud")
    builder.add_edge("loud", END)
    graph = builder.compile()
    uncompiled = builder


    def make_graph(config):
        return builder.compile(name="made")
    """
)


@pytest.fixture(scope="module")
def user_server(tmp_path_factory):
    project = tmp_path_factory.mktemp("user-project")
    (project / "agent").mkdir()
    (project / "agent" / "__init__.py").write_text("")
    (project / "agent" / "helpers.py").write_text("def shout(text):\n    return text.upper() + '!'\n")
    (project / "agent" / "graph.py").write_text(GRAPH)
    (project / "langgraph.json").write_text(
        '{"dependencies": ["."], "python_version": "3.11",'
        ' "graphs": {"by_path": "./agent/graph.py:graph", "by_module": "agent.graph:uncompiled",'
        ' "factory": {"path": "agent.graph:make_graph", "description": "built per config"}},'
        ' "ui": {"agent": "./ui.tsx"}}'
    )
    server = Server(config=project / "langgraph.json").wait_ready()
    yield server
    server.stop()


async def test_user_graphs_run(user_server):
    client = get_client(url=user_server.url)
    for graph_id in ("by_path", "by_module", "factory"):
        assert await client.runs.wait(None, graph_id, input={"text": "hi"}) == {"text": "HI!"}
    factory = (await client.assistants.search(graph_id="factory"))[0]
    assert factory["name"] == "made" and factory["description"] == "built per config"


async def test_unsupported_keys_warn_not_crash(user_server):
    async with httpx.AsyncClient(base_url=user_server.url) as http:
        assert (await http.get("/ok")).status_code == 200
    output = user_server.read_output()
    assert "'ui' is not supported yet" in output
