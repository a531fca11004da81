"""Graphs whose state is a dataclass or a pydantic model, as LangGraph allows."""

from __future__ import annotations

from dataclasses import dataclass, field

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel


@dataclass
class Note:
    text: str = ""
    words: list[str] = field(default_factory=list)


@dataclass
class Style:
    shout: bool = False


def split(state: Note, runtime: Runtime[Style]) -> dict:
    shout = bool(runtime.context and runtime.context.shout)
    return {"words": state.text.split(), "text": state.text.upper() if shout else state.text}


dataclass_graph = (
    StateGraph(Note, context_schema=Style)
    .add_node("split", split)
    .add_edge(START, "split")
    .add_edge("split", END)
    .compile()
)


class Order(BaseModel):
    item: str
    quantity: int = 1
    total: float | None = None


class Prices(BaseModel):
    unit_price: float = 2.5


def price(state: Order, runtime: Runtime[Prices]) -> dict:
    unit = runtime.context.unit_price if runtime.context else 2.5
    return {"total": state.quantity * unit}


pydantic_graph = (
    StateGraph(Order, context_schema=Prices)
    .add_node("price", price)
    .add_edge(START, "price")
    .add_edge("price", END)
    .compile()
)
