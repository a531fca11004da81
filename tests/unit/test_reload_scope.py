"""What `stepgraph dev --reload` watches, and the one line a failed reload prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stepgraph_local.reload import describe, watched_folders


def test_the_project_its_dependencies_graph_folders_and_env_file_are_watched_once(tmp_path: Path) -> None:
    for folder in ("app/src/agent", "shared", "other", "envs"):
        (tmp_path / folder).mkdir(parents=True)
    config = {
        "dependencies": [".", "../shared", "langchain-openai"],  # a pip requirement watches nothing
        "graphs": {"a": "./src/agent/graph.py:graph", "b": {"path": "../other/g.py:graph"}, "c": "pkg.mod:graph"},
        "env": "../envs/.env",
    }
    (tmp_path / "app" / "langgraph.json").write_text(json.dumps(config))
    watched = watched_folders(tmp_path / "app" / "langgraph.json")
    # app/src/agent is inside app: one watch covers it.
    assert sorted(watched) == sorted(tmp_path.resolve() / f for f in ("app", "shared", "other", "envs"))


def test_a_failed_reload_says_where_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SyntaxError) as syntax:
        compile("def broken(:\n", str(tmp_path / "graph.py"), "exec")
    assert describe(syntax.value) == f"{tmp_path / 'graph.py'}:1: SyntaxError: invalid syntax"
    module = tmp_path / "graph.py"
    module.write_text("x = 1\nraise RuntimeError('no API key\\nset one')\n")
    with pytest.raises(RuntimeError) as raised:
        exec(compile(module.read_text(), str(module), "exec"), {})
    assert describe(raised.value, [tmp_path.resolve()]) == f"{module}:2: RuntimeError: no API key"
