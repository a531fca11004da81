"""The langgraph.json loader: graph forms, factory signatures, `env` and `dependencies`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from langgraph.pregel import Pregel
from stepgraph.engine import ConfigError
from stepgraph.engine.graphs import GraphRegistry

GRAPHS = textwrap.dedent(
    """
    from __future__ import annotations

    import contextlib
    from typing import TYPE_CHECKING

    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    if TYPE_CHECKING:
        from langgraph_sdk.runtime import ServerRuntime

    CALLS = []


    class S(TypedDict, total=False):
        seen: str


    def build(seen):
        return StateGraph(S).add_node("n", lambda s: {"seen": seen}).add_edge(START, "n").add_edge("n", END)


    def plain():
        CALLS.append("plain")
        return build("plain").compile()


    def with_config(config: RunnableConfig):
        return build(str(config["configurable"].get("k")))


    def unannotated(cfg):
        return build(str(cfg["configurable"].get("k")))


    async def with_runtime(runtime: ServerRuntime):
        execution = runtime.execution_runtime
        return build(f"{runtime.access_context}:{execution.context if execution else None}")


    def runtime_first(runtime: ServerRuntime, config):
        return build(f"{config['configurable'].get('k')}:{runtime.access_context}")


    @contextlib.contextmanager
    def sync_cm(config):
        CALLS.append("enter")
        yield build("cm")
        CALLS.append("exit")


    @contextlib.asynccontextmanager
    async def async_cm():
        CALLS.append("aenter")
        yield build("acm")
        CALLS.append("aexit")


    def too_many(a, b, c):
        return build("x")


    not_a_graph = 42
    """
)


@pytest.fixture(autouse=True)
def process_state(monkeypatch):
    """The loader changes sys.path and os.environ, as it must: undo that after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    environ = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(environ)


def project(tmp_path: Path, graphs: dict[str, str], **extra) -> Path:
    (tmp_path / "factories.py").write_text(GRAPHS)
    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": graphs, **extra}))
    return tmp_path / "langgraph.json"


def seen(graph: Pregel) -> str:
    return graph.invoke({})["seen"]


def calls_of(registry: GraphRegistry) -> list[str]:
    """What the factories of this registry's factories.py recorded (imported here if not yet)."""
    registry.is_factory("plain")
    calls = sys.modules["_stepgraph_graph__factories"].CALLS
    calls.clear()
    return calls


@pytest.fixture
def registry(tmp_path):
    names = ["plain", "with_config", "unannotated", "with_runtime", "runtime_first", "sync_cm", "async_cm"]
    return GraphRegistry.from_config(project(tmp_path, {n: f"./factories.py:{n}" for n in names}))


def test_factories_for_introspection_are_called_once_and_cached(registry):
    calls = calls_of(registry)
    assert seen(registry.get("plain")) == "plain"
    assert registry.get("plain") is registry.get("plain")
    assert seen(registry.get("with_config")) == "None"
    assert seen(registry.get("with_runtime")) == "assistants.read:None"
    assert seen(registry.get("runtime_first")) == "None:assistants.read"
    assert seen(registry.get("async_cm")) == "acm"
    assert calls == ["plain", "aenter", "aexit"]


def opened(registry: GraphRegistry, graph_id: str, config: dict, look, **kwargs):
    """What `look(graph)` says inside the run's block of aopen_graph (as the runner uses it)."""

    async def main():
        async with registry.aopen_graph(graph_id, config, **kwargs) as graph:
            return look(graph)

    return asyncio.run(main())


def test_aopen_graph_calls_the_factory_with_the_runs_config_and_runtime(registry):
    config = {"configurable": {"k": "v"}}
    expected = {
        "with_config": "v",
        "unannotated": "v",
        "with_runtime": "threads.create_run:{'a': 1}",
        "runtime_first": "v:threads.create_run",
    }
    for graph_id, value in expected.items():
        assert registry.is_factory(graph_id)
        assert opened(registry, graph_id, config, seen, context={"a": 1}) == value, graph_id


def test_aopen_graph_keeps_a_context_manager_open_for_the_run(registry):
    calls = calls_of(registry)
    assert opened(registry, "sync_cm", {"configurable": {}}, lambda g: (list(calls), seen(g))) == (["enter"], "cm")
    assert calls == ["enter", "exit"]
    calls.clear()
    assert opened(registry, "async_cm", {"configurable": {}}, lambda g: (list(calls), seen(g))) == (["aenter"], "acm")
    assert calls == ["aenter", "aexit"]


def test_aopen_graph_runs_async_factories_on_the_callers_loop(registry):
    async def main():
        calls = calls_of(registry)
        async with registry.aopen_graph("async_cm", {"configurable": {}}) as graph:
            assert calls == ["aenter"] and (await graph.ainvoke({}))["seen"] == "acm"
        assert calls == ["aenter", "aexit"]
        async with registry.aopen_graph("with_runtime", {"configurable": {}}, context={"b": 2}) as graph:
            assert (await graph.ainvoke({}))["seen"] == "threads.create_run:{'b': 2}"
        # A synchronous get() from inside a running loop still builds an async factory's graph.
        assert seen(registry.get("with_runtime")) == "assistants.read:None"

    asyncio.run(main())


def test_static_graphs_are_not_factories(tmp_path):
    (tmp_path / "g.py").write_text(GRAPHS + "\ncompiled = build('c').compile()\nbuilder = build('b')\n")
    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": {"c": "./g.py:compiled", "b": "./g.py:builder"}}))
    registry = GraphRegistry.from_config(tmp_path / "langgraph.json")
    for graph_id in ("c", "b"):
        assert not registry.is_factory(graph_id)
        assert opened(registry, graph_id, {"configurable": {}}, lambda graph: graph) is registry.get(graph_id)
    # Both graphs come from one import of g.py.
    assert seen(registry.get("c")) == "c" and seen(registry.get("b")) == "b"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("./factories.py:too_many", "at most a config and a ServerRuntime"),
        ("./factories.py:not_a_graph", "not a graph"),
        ("./factories.py:missing", "has no attribute 'missing'"),
        ("./nowhere.py:graph", "does not exist"),
        ("factories", "must look like"),
    ],
)
def test_bad_references_are_config_errors(tmp_path, ref, message):
    registry = GraphRegistry.from_config(project(tmp_path, {"g": ref}))
    with pytest.raises(ConfigError, match=message):
        registry.get("g")


def test_env_file_is_read_with_dotenv_semantics_before_graphs_import(tmp_path):
    os.environ["SG_OVERRIDDEN"] = "from the shell"
    (tmp_path / ".env").write_text(
        "# a comment\n"
        'SG_QUOTED="two words"  # trailing comment\n'
        "export SG_EXPORTED='single'\n"
        "SG_EXPANDED=${SG_QUOTED}!\n"
        "SG_OVERRIDDEN=from the file\n"
    )
    (tmp_path / "g.py").write_text(
        "import os\nfrom langgraph.graph import StateGraph\nfrom typing_extensions import TypedDict\n"
        "class S(TypedDict):\n    x: str\n"
        "AT_IMPORT = os.environ['SG_QUOTED']\n"
        "graph = StateGraph(S).add_node('n', lambda s: s).set_entry_point('n').compile()\n"
    )
    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": {"g": "./g.py:graph"}, "env": ".env"}))
    registry = GraphRegistry.from_config(tmp_path / "langgraph.json")
    registry.get("g")
    assert sys.modules["_stepgraph_graph__g"].AT_IMPORT == "two words"
    assert os.environ["SG_EXPORTED"] == "single"
    assert os.environ["SG_EXPANDED"] == "two words!"
    assert os.environ["SG_OVERRIDDEN"] == "from the file"  # as the peer's dev server does


def test_inline_env_mapping(tmp_path):
    GraphRegistry.from_config(project(tmp_path, {"g": "./factories.py:plain"}, env={"SG_INLINE": 7}))
    assert os.environ["SG_INLINE"] == "7"


def test_src_layout_dependency_is_importable_by_module_and_by_file(tmp_path):
    package = tmp_path / "src" / "sgagent"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("LABEL = 'helped'\n")
    (package / "graph.py").write_text(
        GRAPHS + "\nfrom sgagent.helpers import LABEL\n\ngraph = build(LABEL).compile()\n"
    )
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "sgagent"\n[tool.setuptools.package-dir]\n"sgagent" = "src/sgagent"\n'
    )
    (tmp_path / "langgraph.json").write_text(
        json.dumps(
            {"dependencies": ["."], "graphs": {"file": "./src/sgagent/graph.py:graph", "module": "sgagent.graph:graph"}}
        )
    )
    registry = GraphRegistry.from_config(tmp_path / "langgraph.json")
    assert str(tmp_path / "src") in sys.path
    assert seen(registry.get("file")) == seen(registry.get("module")) == "helped"
