"""Graphs for the data-safety tests (tests/functional/test_data_safety.py): runs that a test holds
in flight at a point of its choosing, and nodes that write large values."""

from __future__ import annotations

import operator
import time
from pathlib import Path
from typing import Annotated, Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict


class Fork(TypedDict, total=False):
    items: Annotated[list[str], operator.add]
    gate: str  # a file: `hold` waits for it to exist
    events: int  # how many custom events `burst` writes
    event_bytes: int  # of how many bytes each
    big: int  # bytes `first` pads its item with (over 350 KB: spilled to S3)


def _wait_for(gate: str, timeout: float = 60) -> None:
    """Poll for the test's go-ahead (a file), with a deadline: the test decides when the node ends."""
    deadline = time.monotonic() + timeout
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def _left(state: Fork) -> Fork:
    return {"items": [f"left:{interrupt('left?')}"]}


def _right(state: Fork) -> Fork:
    answer: Any = interrupt("right?")
    if isinstance(answer, dict):  # {"answer": ..., "gate": file}: hold the superstep open
        _wait_for(answer["gate"])
        answer = answer["answer"]
    return {"items": [f"right:{answer}"]}


# fork: two nodes in one superstep, each stopping on interrupt(); resumed, `right` may be held
# (its resume value names a gate) while `left`'s result is already stored.
_g = StateGraph(Fork)
_g.add_node("left", _left)
_g.add_node("right", _right)
_g.add_edge(START, "left")
_g.add_edge(START, "right")
_g.add_edge("left", END)
_g.add_edge("right", END)
fork = _g.compile()


def _hold(state: Fork) -> Fork:
    _wait_for(state["gate"])
    return {"items": ["held"]}


def _first(state: Fork) -> Fork:
    return {"items": ["first" + "x" * state.get("big", 0)]}


# hold: a first superstep (its value as large as asked), then a node that runs until its gate
# file exists.
_g = StateGraph(Fork)
_g.add_node("first", _first)
_g.add_node("hold", _hold)
_g.add_edge(START, "first")
_g.add_edge("first", "hold")
_g.add_edge("hold", END)
hold = _g.compile()


def _burst(state: Fork) -> Fork:
    write = get_stream_writer()
    for i in range(state["events"]):
        write({"i": i, "pad": "x" * state["event_bytes"]})
    return {"items": ["burst"]}


# burst: one node that writes `events` custom stream events of `event_bytes` each, at once.
_g = StateGraph(Fork)
_g.add_node("burst", _burst)
_g.add_edge(START, "burst")
_g.add_edge("burst", END)
burst = _g.compile()
