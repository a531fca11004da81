"""Graphs with long-term memory: one node writes to `runtime.store`, the next reads it back with
`get_store()` (get and a semantic search); `memory` has sync nodes, `amemory` async ones (both
in every server, whatever `EXAMPLE_NODES` says: one server tests both). `embed` is the store's
deterministic embedding function (langgraph.json `store.index`)."""

from __future__ import annotations

from typing import Any

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


def embed(texts: list[str]) -> list[list[float]]:
    """How often each letter a-z occurs: texts sharing letters are near."""
    return [[float(t.lower().count(chr(ord("a") + i))) for i in range(26)] for t in texts]


class Memory(TypedDict, total=False):
    user: str
    remember: str  # a fact to keep under ("memories", user)
    query: str
    stored: dict[str, Any] | None
    nearest: str | None
    seen: list[str]


def _remember(state: Memory, runtime: Runtime) -> Memory:
    assert runtime.store is not None
    key = f"fact-{len(runtime.store.search(('memories', state['user']), limit=100))}"
    runtime.store.put(("memories", state["user"]), key, {"text": state["remember"]})
    return {}


async def _aremember(state: Memory, runtime: Runtime) -> Memory:
    assert runtime.store is not None
    key = f"fact-{len(await runtime.store.asearch(('memories', state['user']), limit=100))}"
    await runtime.store.aput(("memories", state["user"]), key, {"text": state["remember"]})
    return {}


def _recall(state: Memory) -> Memory:
    store = get_store()
    namespace = ("memories", state["user"])
    found = store.search(namespace, query=state.get("query") or state["remember"], limit=1)
    return {
        "stored": (store.get(("profile", state["user"]), "prefs") or _none()).value,
        "nearest": found[0].value["text"] if found else None,
        "seen": sorted(item.value["text"] for item in store.search(namespace, limit=100)),
    }


async def _arecall(state: Memory) -> Memory:
    store = get_store()
    namespace = ("memories", state["user"])
    found = await store.asearch(namespace, query=state.get("query") or state["remember"], limit=1)
    prefs = await store.aget(("profile", state["user"]), "prefs")
    return {
        "stored": prefs.value if prefs else None,
        "nearest": found[0].value["text"] if found else None,
        "seen": sorted(item.value["text"] for item in await store.asearch(namespace, limit=100)),
    }


class _none:
    value = None


def _graph(remember: Any, recall: Any) -> Any:
    g = StateGraph(Memory)
    g.add_node("remember", remember)
    g.add_node("recall", recall)
    g.add_edge(START, "remember")
    g.add_edge("remember", "recall")
    g.add_edge("recall", END)
    return g.compile()


memory = _graph(_remember, _recall)
amemory = _graph(_aremember, _arecall)
