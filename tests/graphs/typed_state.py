"""A graph whose state holds the user's own pydantic model: in LangGraph's strict msgpack mode it
must still revive as that model (allowlisted from the state schema) on every read of the thread,
including the step that reloads the checkpoint of the one before."""

from __future__ import annotations

import operator
from typing import Annotated

from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel
from typing_extensions import TypedDict


class Doc(BaseModel):
    text: str
    words: int = 0


class Typed(TypedDict, total=False):
    doc: Doc
    seen: Annotated[list[str], operator.add]


def write(state: Typed) -> Typed:
    return {"doc": Doc(text="hello typed world")}


def count(state: Typed) -> Typed:
    doc = state["doc"]  # a Doc, or an AttributeError below if it came back as a dict
    return {"doc": doc.model_copy(update={"words": len(doc.text.split())}), "seen": [type(doc).__name__]}


typed = StateGraph(Typed).add_node("write", write).add_node("count", count)
typed = typed.add_edge(START, "write").add_edge("write", "count").add_edge("count", END).compile()
