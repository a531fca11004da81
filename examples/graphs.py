"""Example graphs with deterministic nodes (no LLM; `chat` uses a fake streaming model): what
`make dev` serves and the tests drive, with sync or async nodes (`flavors.py`)."""

from __future__ import annotations

import operator
from typing import Annotated

from flavors import node
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict  # pydantic builds its JSON schemas on Python 3.11 too


class Items(TypedDict, total=False):
    items: Annotated[list[str], operator.add]


def _append(name: str):
    def step(state: Items) -> Items:
        return {"items": [name]}

    step.__name__ = name
    return node(step)


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
_loop.add_node("tick", node(tick))
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
_approval.add_node("draft", node(draft))
_approval.add_node("review", node(review))
_approval.add_node("publish", node(publish))
_approval.add_edge(START, "draft")
_approval.add_edge("draft", "review")
_approval.add_edge("review", "publish")
_approval.add_edge("publish", END)
approval = _approval.compile()


def explode(state: Items) -> Items:
    raise ValueError("boom: this node always fails")


# failing: a node that raises, for error paths.
_failing = StateGraph(Items)
_failing.add_node("explode", node(explode))
_failing.add_edge(START, "explode")
_failing.add_edge("explode", END)
failing = _failing.compile()


# ---------------------------------------------------------------- human in the loop
def _ask(name: str):
    def step(state: Items) -> Items:
        answer = interrupt({"question": f"{name}?"})
        return {"items": [f"{name}:{answer}"]}

    step.__name__ = name
    return node(step)


# pair: two nodes in one superstep, each stops on interrupt(): two interrupts at once, resumed
# together with {interrupt_id: value}.
_pair = StateGraph(Items)
_pair.add_node("left", _ask("left"))
_pair.add_node("right", _ask("right"))
_pair.add_edge(START, "left")
_pair.add_edge(START, "right")
_pair.add_edge("left", END)
_pair.add_edge("right", END)
pair = _pair.compile()


# nested: a parent whose `child` node is a subgraph that stops on interrupt() in its `ask` node
# (subgraph state, stream_subgraphs namespaces).
_child = StateGraph(Items)
_child.add_node("think", _append("think"))
_child.add_node("ask", _ask("ask"))
_child.add_edge(START, "think")
_child.add_edge("think", "ask")
_child.add_edge("ask", END)
_nested = StateGraph(Items)
_nested.add_node("before", _append("before"))
_nested.add_node("child", _child.compile())
_nested.add_node("after", _append("after"))
_nested.add_edge(START, "before")
_nested.add_edge("before", "child")
_nested.add_edge("child", "after")
_nested.add_edge("after", END)
nested = _nested.compile()


# ---------------------------------------------------------------- streaming
class Ticks(TypedDict, total=False):
    count: int  # how many custom events to write
    interval: float  # seconds between them
    sent: int


def emit(state: Ticks) -> Ticks:
    """Writes `count` custom events with get_stream_writer(), `interval` seconds apart, each
    stamped with the wall clock at the write (the latency benchmark reads it)."""
    import time

    from langgraph.config import get_stream_writer

    write = get_stream_writer()
    count, interval = state.get("count", 10), state.get("interval", 0.0)
    for i in range(count):
        if i and interval:
            time.sleep(interval)
        write({"i": i, "at": time.time()})
    return {"sent": count}


async def aemit(state: Ticks) -> Ticks:
    """emit's async twin: waits with asyncio.sleep, as an async node should."""
    import asyncio
    import time

    from langgraph.config import get_stream_writer

    write = get_stream_writer()
    count, interval = state.get("count", 10), state.get("interval", 0.0)
    for i in range(count):
        if i and interval:
            await asyncio.sleep(interval)
        write({"i": i, "at": time.time()})
    return {"sent": count}


# writer: one node streaming custom events while it runs.
_writer = StateGraph(Ticks)
_writer.add_node("emit", node(emit, aemit))
_writer.add_edge(START, "emit")
_writer.add_edge("emit", END)
writer = _writer.compile()


def _chat_model():
    """A deterministic chat model that streams its reply word by word, pausing between tokens,
    the way a real model's tokens arrive. Built lazily: only the `chat` graph needs it."""
    import re
    import time

    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

    class EchoChatModel(BaseChatModel):
        delay: float = 0.05

        @property
        def _llm_type(self) -> str:
            return "stepgraph-echo"

        def _reply(self, messages) -> str:
            return f"You said: {messages[-1].content}" if messages else "Hello!"

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._reply(messages)))])

        def _stream(self, messages, stop=None, run_manager=None, **kwargs):
            delay = kwargs.get("delay", self.delay)
            for i, token in enumerate(re.split(r"(\s)", self._reply(messages))):
                if i and delay:
                    time.sleep(delay)
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
                if run_manager:
                    run_manager.on_llm_new_token(token, chunk=chunk)
                yield chunk

        async def _astream(self, messages, stop=None, run_manager=None, **kwargs):
            import asyncio

            delay = kwargs.get("delay", self.delay)
            for i, token in enumerate(re.split(r"(\s)", self._reply(messages))):
                if i and delay:
                    await asyncio.sleep(delay)
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
                if run_manager:
                    await run_manager.on_llm_new_token(token, chunk=chunk)
                yield chunk

    return EchoChatModel()


def respond(state, config):
    """Answers with the fake model; `configurable.token_delay` sets the pause between tokens."""
    delay = float((config.get("configurable") or {}).get("token_delay", 0.05))
    return {"messages": [_chat_model().invoke(state["messages"], delay=delay)]}


async def arespond(state, config):
    """respond's async twin: the model streams through its async path (`ainvoke`)."""
    delay = float((config.get("configurable") or {}).get("token_delay", 0.05))
    return {"messages": [await _chat_model().ainvoke(state["messages"], delay=delay)]}


def sign(state):
    """A whole message, not streamed: `messages` mode reports it as messages/complete."""
    import uuid

    from langchain_core.messages import AIMessage

    return {"messages": [AIMessage(content="Anything else?", id=str(uuid.uuid4()))]}


# chat: the fake model streams its answer token by token (stream modes messages /
# messages-tuple / events), then `sign` adds a message in one piece.
_chat = StateGraph(MessagesState)
_chat.add_node("respond", node(respond, arespond))
_chat.add_node("sign", node(sign))
_chat.add_edge(START, "respond")
_chat.add_edge("respond", "sign")
_chat.add_edge("sign", END)
chat = _chat.compile()
