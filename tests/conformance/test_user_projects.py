"""Projects as users bring them, served by `stepgraph dev` and driven by `langgraph-sdk`.

- LangGraph's app template (examples/template_app): a package under `src/`, `env: ".env"`, an
  async node answering from `Runtime` context.
- Every graph form langgraph.json allows (tests/user_projects/forms): compiled, StateGraph,
  module path, factories (plain, config, async, ServerRuntime, both, context manager), dataclass
  and pydantic state, an inline `env` mapping.
- A `create_react_agent` agent on a scripted chat model (examples/react_agent.py), its tokens
  streamed one by one.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from itertools import pairwise
from typing import Any

import pytest
from harness import ROOT, Server
from langgraph_sdk import get_client

pytestmark = pytest.mark.asyncio(loop_scope="function")

FORMS = ROOT / "tests" / "user_projects" / "forms" / "langgraph.json"
TEMPLATE = ROOT / "examples" / "template_app"


async def wait(client: Any, assistant: str, input: Any, **kwargs: Any) -> Any:
    thread = await client.threads.create()
    return await client.runs.wait(thread["thread_id"], assistant, input=input, **kwargs)


async def assistant_of(client: Any, graph_id: str) -> str:
    return (await client.assistants.search(graph_id=graph_id, metadata={"created_by": "system"}))[0]["assistant_id"]


# --- LangGraph's app template ------------------------------------------------------------------


@pytest.fixture(scope="module")
def template_server(tmp_path_factory):
    """The example copied as a user clones the template: `.env` written from `.env.example`."""
    project = tmp_path_factory.mktemp("template") / "app"
    shutil.copytree(TEMPLATE, project, ignore=shutil.ignore_patterns("__pycache__", ".env"))
    (project / ".env").write_text(
        "# what a user puts in .env: python-dotenv syntax\n"
        'export GREETING="Howdy"  # quoted, exported, commented\n'
        "UNUSED_KEY='x'\n"
    )
    config = json.loads((project / "langgraph.json").read_text())
    # The same graph by module path: `dependencies: ["."]` makes the src/ package importable.
    config["graphs"]["agent_by_module"] = "agent.graph:graph"
    (project / "langgraph.json").write_text(json.dumps(config))
    server = Server(config=project / "langgraph.json").wait_ready()
    yield server
    server.stop()


async def test_template_app_answers_from_run_context_and_env(template_server):
    client = get_client(url=template_server.url)
    for graph_id in ("agent", "agent_by_module"):
        out = await wait(client, graph_id, {"changeme": "hi"}, context={"my_configurable_param": "blue"})
        assert out == {"changeme": "Howdy! hi configured with blue"}, graph_id


async def test_template_app_schemas(template_server):
    client = get_client(url=template_server.url)
    schemas = await client.assistants.get_schemas(await assistant_of(client, "agent"))
    assert schemas["graph_id"] == "agent"
    assert set(schemas["context_schema"]["properties"]) == {"my_configurable_param"}
    assert schemas["input_schema"]["properties"]["changeme"]["default"] == "example"
    assert "changeme" in schemas["output_schema"]["properties"]


async def test_template_app_assistant_context_under_the_runs(template_server):
    client = get_client(url=template_server.url)
    assistant = await client.assistants.create("agent", context={"my_configurable_param": "assistant's"})
    out = await wait(client, assistant["assistant_id"], {"changeme": "hi"})
    assert out == {"changeme": "Howdy! hi configured with assistant's"}
    out = await wait(client, assistant["assistant_id"], {"changeme": "hi"}, context={"my_configurable_param": "run's"})
    assert out == {"changeme": "Howdy! hi configured with run's"}


# --- every graph form --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forms_server():
    server = Server(config=FORMS).wait_ready()
    yield server
    server.stop()


FACTORIES = ("factory_config", "factory_async", "factory_runtime", "factory_both", "factory_context_manager")


async def test_every_graph_form_runs(forms_server):
    client = get_client(url=forms_server.url)
    # The label says which form answered; "hello" comes from the inline `env` mapping and "ann"
    # from the run's context, through `Runtime[Who]`.
    for graph_id, label in {
        "compiled": "graph",
        "uncompiled": "graph",
        "by_module": "graph",
        "factory_plain": "factory_plain",
    }.items():
        out = await wait(client, graph_id, {"text": "hi"}, context={"name": "ann"})
        assert out == {"text": f"hello ann from {label}: hi"}, graph_id
    for graph_id in FACTORIES:
        out = await wait(client, graph_id, {"text": "hi"}, context={"name": "ann"})
        assert out["text"].startswith(f"hello ann from {graph_id}[") and out["text"].endswith(": hi"), out


async def test_factories_get_each_runs_config_and_runtime(forms_server):
    client = get_client(url=forms_server.url)
    expected = {
        "factory_config": "factory_config[mint]",
        "factory_async": "factory_async[mint]",
        "factory_runtime": "factory_runtime[threads.create_run:ann]",
        "factory_both": "factory_both[mint|threads.create_run:ann]",
        "factory_context_manager": "factory_context_manager[mint]",
    }
    for graph_id, label in expected.items():
        assistant = await client.assistants.create(graph_id, config={"configurable": {"flavour": "mint"}})
        out = await wait(client, assistant["assistant_id"], {"text": "hi"}, context={"name": "ann"})
        assert out == {"text": f"hello ann from {label}: hi"}, graph_id


async def test_factory_schemas_and_graph(forms_server):
    client = get_client(url=forms_server.url)
    for graph_id in ("factory_runtime", "factory_context_manager", "uncompiled"):
        assistant_id = await assistant_of(client, graph_id)
        schemas = await client.assistants.get_schemas(assistant_id)
        assert set(schemas["context_schema"]["properties"]) == {"name"}, graph_id
        assert set(schemas["input_schema"]["properties"]) == {"text"}, graph_id
        drawn = await client.assistants.get_graph(assistant_id)
        assert {n["id"] for n in drawn["nodes"]} == {"__start__", "answer", "__end__"}


async def test_dataclass_state(forms_server):
    client = get_client(url=forms_server.url)
    thread = await client.threads.create()
    out = await client.runs.wait(thread["thread_id"], "dataclass_state", input={"text": "a b"}, context={"shout": True})
    assert out == {"text": "A B", "words": ["a", "b"]}
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {"text": "A B", "words": ["a", "b"]} and state["next"] == []
    # A second run on the thread starts from the stored dataclass state.
    out = await client.runs.wait(thread["thread_id"], "dataclass_state", input={"text": "c d e"})
    assert out == {"text": "c d e", "words": ["c", "d", "e"]}
    await client.threads.update_state(thread["thread_id"], {"text": "edited"}, as_node="split")
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {"text": "edited", "words": ["c", "d", "e"]}
    schemas = await client.assistants.get_schemas(await assistant_of(client, "dataclass_state"))
    assert set(schemas["input_schema"]["properties"]) == {"text", "words"}
    assert set(schemas["output_schema"]["properties"]) == {"text", "words"}
    assert schemas["context_schema"]["properties"]["shout"]["type"] == "boolean"


async def test_pydantic_state(forms_server):
    client = get_client(url=forms_server.url)
    thread = await client.threads.create()
    out = await client.runs.wait(
        thread["thread_id"], "pydantic_state", input={"item": "tea", "quantity": 3}, context={"unit_price": 3.0}
    )
    assert out == {"item": "tea", "quantity": 3, "total": 9.0}
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {"item": "tea", "quantity": 3, "total": 9.0}
    parts = [
        (part.event, part.data)
        async for part in client.runs.stream(
            thread["thread_id"],
            "pydantic_state",
            input={"item": "jam", "quantity": 2},
            stream_mode=["values", "updates"],
        )
    ]
    assert ("updates", {"price": {"total": 5.0}}) in parts
    assert [data for event, data in parts if event == "values"][-1] == {"item": "jam", "quantity": 2, "total": 5.0}
    schemas = await client.assistants.get_schemas(await assistant_of(client, "pydantic_state"))
    assert schemas["input_schema"]["required"] == ["item"]
    assert schemas["context_schema"]["properties"]["unit_price"]["default"] == 2.5
    # Input the model refuses ends the run in error, as LangGraph raises it.
    out = await wait(client, "pydantic_state", {"quantity": "many"}, raise_error=False)
    assert out["__error__"]["error"] == "ValidationError"


# --- the ReAct agent ---------------------------------------------------------------------------

QUESTION = {"messages": [{"role": "user", "content": "What is (2 + 3) * 4?"}]}
ANSWER = "(2 + 3) * 4 = 20. I added first, then multiplied."


async def test_react_agent_messages_tuple_streams_tokens_tool_calls_and_answer(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    chunks: dict[str, list[dict]] = defaultdict(list)  # message id → its chunks, in order
    order: list[str] = []
    async for part in client.runs.stream(thread["thread_id"], "react", input=QUESTION, stream_mode="messages-tuple"):
        if part.event != "messages":
            continue
        message, metadata = part.data
        assert metadata["langgraph_node"] in ("agent", "tools")
        if message["id"] not in chunks:
            order.append(message["id"])
        chunks[message["id"]].append(message)
    # Three model turns, each token by token, with the two tool results between them.
    kinds = [chunks[i][0]["type"] for i in order]
    assert kinds == ["AIMessageChunk", "tool", "AIMessageChunk", "tool", "AIMessageChunk"], kinds
    turns = [chunks[i] for i in order if chunks[i][0]["type"] == "AIMessageChunk"]
    assert all(len([c for c in turn if c["content"]]) >= 5 for turn in turns)  # one chunk per word
    calls = [c for turn in turns for chunk in turn for c in chunk.get("tool_call_chunks") or []]
    assert [(c["name"], json.loads(c["args"])) for c in calls] == [
        ("add", {"a": 2, "b": 3}),
        ("multiply", {"a": 5, "b": 4}),
    ]
    tool_messages = [chunks[i][0] for i in order if chunks[i][0]["type"] == "tool"]
    assert [(m["name"], m["content"], m["tool_call_id"]) for m in tool_messages] == [
        ("add", "5", "call_add"),
        ("multiply", "20", "call_multiply"),
    ]
    assert "".join(c["content"] for c in turns[-1]) == ANSWER
    state = await client.threads.get_state(thread["thread_id"])
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai", "tool", "ai", "tool", "ai"]
    assert state["values"]["messages"][-1]["content"] == ANSWER


async def test_react_agent_messages_streams_partials(server):
    client = get_client(url=server.url)
    thread = await client.threads.create()
    partials: dict[str, list[dict]] = defaultdict(list)  # message id → its partials, in order
    completes: list[dict] = []
    async for part in client.runs.stream(thread["thread_id"], "react", input=QUESTION, stream_mode="messages"):
        if part.event == "messages/partial":
            for message in part.data:
                partials[message["id"]].append(message)
        elif part.event == "messages/complete":
            completes.extend(part.data)
    ai = [versions for versions in partials.values() if versions[0]["type"] == "ai"]
    assert len(ai) == 3
    # Each turn grows a token at a time: every partial extends the one before.
    for versions in ai:
        texts = [m["content"] for m in versions if m["content"]]
        texts = [t for i, t in enumerate(texts) if i == 0 or t != texts[i - 1]]  # tool-call chunks add no text
        assert len(texts) >= 5 and all(b.startswith(a) and b != a for a, b in pairwise(texts))
    assert [c["name"] for versions in ai for c in versions[-1]["tool_calls"]] == ["add", "multiply"]
    assert ai[-1][-1]["content"] == ANSWER
    tools = [m for m in completes if m["type"] == "tool"]
    assert [(m["name"], m["content"]) for m in tools] == [("add", "5"), ("multiply", "20")]


async def test_react_agent_wait(server):
    client = get_client(url=server.url)
    out = await wait(client, "react", QUESTION)
    messages = out["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "tool", "ai", "tool", "ai"]
    assert [c["name"] for m in messages if m["type"] == "ai" for c in m["tool_calls"]] == ["add", "multiply"]
    assert messages[-1]["content"] == ANSWER
