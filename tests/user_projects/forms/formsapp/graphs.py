"""One graph, exported as a compiled graph, a StateGraph and factories of every signature.

Each graph's node answers with the label it was built with, so a test can tell which form served
a run and what its factory was called with (the run's config, the ServerRuntime it got).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict  # pydantic builds schemas from it on Python < 3.12

if TYPE_CHECKING:  # as users write it: the factory's annotation resolves all the same
    from langgraph_sdk.runtime import ServerRuntime


class Text(TypedDict, total=False):
    text: str


@dataclass
class Who:
    name: str = "nobody"


def build(label: str) -> StateGraph:
    def answer(state: Text, runtime: Runtime[Who]) -> Text:
        who = runtime.context.name if runtime.context else "nobody"
        return {"text": f"{os.environ['FORMS_GREETING']} {who} from {label}: {state['text']}"}

    builder = StateGraph(Text, context_schema=Who)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder


builder = build("graph")
compiled = builder.compile()


def make_plain():
    return build("factory_plain").compile()


def make_with_config(config: RunnableConfig):
    return build(f"factory_config[{config['configurable'].get('flavour')}]").compile()


async def make_async(config):
    return build(f"factory_async[{config['configurable'].get('flavour')}]")


def _seen(runtime: ServerRuntime) -> str:
    execution = runtime.execution_runtime
    context = execution.context if execution else None  # ServerRuntime[Who] gets a Who, a bare one a dict
    name = context.name if isinstance(context, Who) else (context or {}).get("name")
    return f"{runtime.access_context}:{name}"


def make_with_runtime(runtime: ServerRuntime[Who]):
    return build(f"factory_runtime[{_seen(runtime)}]").compile()


async def make_with_config_and_runtime(config: RunnableConfig, runtime: ServerRuntime):
    return build(f"factory_both[{config['configurable'].get('flavour')}|{_seen(runtime)}]").compile()


OPENED: list[str] = []


@contextlib.asynccontextmanager
async def open_graph(config: RunnableConfig):
    OPENED.append("open")
    try:
        yield build(f"factory_context_manager[{config['configurable'].get('flavour')}]")
    finally:
        OPENED.append("closed")
