"""`stepgraph dev` reloads a project's graphs when its files change, in-process, so threads, runs
and checkpoints (the emulated AWS) live on; a run in flight finishes the superstep it is in on
the old code and goes on from that checkpoint on the new code; a broken edit keeps the old graphs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from harness import Server, until
from langgraph_sdk import get_sync_client

GRAPH = textwrap.dedent(
    """
    import operator
    import time
    from pathlib import Path
    from typing import Annotated, TypedDict

    from langgraph.graph import END, START, StateGraph

    from helpers import tag

    VERSION = "{version}"


    class State(TypedDict, total=False):
        seen: Annotated[list[str], operator.add]
        gate: str


    def first(state: State) -> State:
        # With a gate, wait in this node until the test opens it (the run is then in flight).
        if state.get("gate"):
            Path(state["gate"] + ".entered").touch()
            deadline = time.monotonic() + 30
            while not Path(state["gate"]).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return {{"seen": [tag(VERSION)]}}


    def second(state: State) -> State:
        return {{"seen": [tag(VERSION)]}}


    builder = StateGraph(State)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    graph = builder.compile()
    """
)
HELPERS = "def tag(version):\n    return version{suffix}\n"


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def test_editing_a_graph_file_reloads_it_and_keeps_threads_and_runs(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    _write(project / "graph.py", GRAPH.format(version="v1"))
    _write(project / "helpers.py", HELPERS.format(suffix=""))
    config = {"dependencies": ["."], "graphs": {"versioned": "./graph.py:graph"}}
    _write(project / "langgraph.json", json.dumps(config))
    server = Server(config=project / "langgraph.json").wait_ready()

    def edit(path: Path, text: str) -> None:
        """Write a project file and wait for the server to say it reloaded the graphs."""
        done = server.read_output().count("stepgraph: reloaded versioned")
        _write(path, text)
        until(lambda: server.read_output().count("stepgraph: reloaded versioned") > done, 20, "the reload")

    try:
        client = get_sync_client(url=server.url)
        earlier = client.threads.create()
        assert client.runs.wait(earlier["thread_id"], "versioned", input={})["seen"] == ["v1", "v1"]

        # A run in flight: held in its first superstep while the graph file changes.
        gate = tmp_path / "gate"
        flying = client.threads.create()
        run = client.runs.create(flying["thread_id"], "versioned", input={"gate": str(gate)})
        until(lambda: Path(f"{gate}.entered").exists(), 20, "the run to enter its first node")
        edit(project / "graph.py", GRAPH.format(version="v2"))
        gate.touch()
        # The superstep under way ends on the code it started with; the next runs the new code.
        assert client.runs.join(flying["thread_id"], run["run_id"])["seen"] == ["v1", "v2"]
        assert client.runs.get(flying["thread_id"], run["run_id"])["status"] == "success"

        later = client.threads.create()
        assert client.runs.wait(later["thread_id"], "versioned", input={})["seen"] == ["v2", "v2"]
        # The earlier thread, its state and its history, as they were.
        assert client.threads.get_state(earlier["thread_id"])["values"]["seen"] == ["v1", "v1"]
        assert len(client.threads.get_history(earlier["thread_id"])) == 4  # input, first, second, end
        assert client.threads.get(earlier["thread_id"])["status"] == "idle"

        # A module the graph imports (under `dependencies`) is reloaded too.
        edit(project / "helpers.py", HELPERS.format(suffix=" + '!'"))
        assert client.runs.wait(later["thread_id"], "versioned", input={})["seen"][-2:] == ["v2!", "v2!"]

        # A broken edit: one line says where and why, and the previous graphs go on serving.
        _write(project / "graph.py", GRAPH.format(version="v3") + "\ndef broken(:\n")
        until(lambda: "reload failed" in server.read_output(), 20, "the failed reload to be reported")
        [line] = [line for line in server.read_output().splitlines() if "reload failed" in line]
        assert "graph.py:" in line and "SyntaxError" in line, line
        assert "Traceback" not in server.read_output()
        fresh = client.threads.create()
        assert client.runs.wait(fresh["thread_id"], "versioned", input={})["seen"] == ["v2!", "v2!"]
    finally:
        output = server.stop()
    assert "Traceback" not in output, output
