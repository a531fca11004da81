"""A single async node that answers from the run's context, as LangGraph's app template does.

`my_configurable_param` comes from the run's (or the assistant's) `context`; `GREETING` comes
from the project's `.env`, loaded before this module is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from langgraph.graph import StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


class Context(TypedDict, total=False):
    """Set these when creating an assistant or when starting a run (`context={...}`)."""

    my_configurable_param: str


@dataclass
class State:
    """The graph's input and output."""

    changeme: str = "example"


async def call_model(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Answer from the input, the run's context and the environment."""
    param = (runtime.context or {}).get("my_configurable_param")
    greeting = os.environ.get("GREETING", "Hi")
    return {"changeme": f"{greeting}! {state.changeme} configured with {param}"}


graph = (
    StateGraph(State, context_schema=Context)
    .add_node(call_model)
    .add_edge("__start__", "call_model")
    .compile(name="New Graph")
)
