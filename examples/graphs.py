"""Example graphs with deterministic nodes (no LLM): what `make dev` serves and the tests drive."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class Items(TypedDict, total=False):
    items: Annotated[list[str], operator.add]


def _append(name: str):
    def node(state: Items) -> Items:
        return {"items": [name]}

    node.__name__ = name
    return node


# chain: three nodes in a row, one superstep each.
_chain = StateGraph(Items)
for _name in ("a", "b", "c"):
    _chain.add_node(_name, _append(_name))
_chain.add_edge(START, "a")
_chain.add_edge("a", "b")
_chain.add_edge("b", "c")
_chain.add_edge("c", END)
chain = _chain.compile()


class Counter(TypedDict, total=False):
    count: int
    steps: int


def tick(state: Counter) -> Counter:
    return {"count": state.get("count", 0) + 1}


def again(state: Counter) -> str:
    return "tick" if state.get("count", 0) < state.get("steps", 50) else END


# loop: one node that runs `steps` times (default 50), one superstep per iteration; its
# recursion limit is raised so long loops (benchmarks) are not cut at LangGraph's default 25.
_loop = StateGraph(Counter)
_loop.add_node("tick", tick)
_loop.add_edge(START, "tick")
_loop.add_conditional_edges("tick", again, ["tick", END])
loop = _loop.compile().with_config(recursion_limit=1_000_000)


def draft(state: Items) -> Items:
    return {"items": ["draft"]}


def review(state: Items) -> Items:
    answer = interrupt({"question": "approve?", "items": state.get("items", [])})
    return {"items": [f"review:{answer}"]}


def publish(state: Items) -> Items:
    return {"items": ["published"]}


# approval: stops on interrupt() in `review` until a human resumes it.
_approval = StateGraph(Items)
_approval.add_node("draft", draft)
_approval.add_node("review", review)
_approval.add_node("publish", publish)
_approval.add_edge(START, "draft")
_approval.add_edge("draft", "review")
_approval.add_edge("review", "publish")
_approval.add_edge("publish", END)
approval = _approval.compile()


def explode(state: Items) -> Items:
    raise ValueError("boom: this node always fails")


# failing: a node that raises, for error paths.
_failing = StateGraph(Items)
_failing.add_node("explode", explode)
_failing.add_edge(START, "explode")
_failing.add_edge("explode", END)
failing = _failing.compile()
