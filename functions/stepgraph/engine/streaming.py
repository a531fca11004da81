"""Stream modes as the peer names and shapes them, from LangGraph's stream parts.

The step iterates `stream_parts(...)` and hands every part that is not its own checkpoint
bookkeeping to a `StreamEmitter`, which appends it to the run's event log under the peer's
event name: `mode` or `mode|ns1|ns2` for subgraphs, `messages` for messages-tuple, and the
v1 `messages/metadata` / `messages/partial` / `messages/complete` triple for `messages`.
The graph runs on the process's engine loop: `astream`, or `astream_events` (v2) for `events`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk, convert_to_messages, message_chunk_to_message

__all__ = ["GRAPH_MODES", "StreamEmitter", "stream_parts"]

# Client stream mode → the LangGraph stream mode that produces it ("events" has none: it is
# astream_events itself).
GRAPH_MODES = {
    "values": "values",
    "updates": "updates",
    "custom": "custom",
    "checkpoints": "checkpoints",
    "tasks": "tasks",
    "debug": "debug",
    "messages": "messages",
    "messages-tuple": "messages",
}

Part = tuple[tuple[str, ...] | None, str, Any]  # (ns, mode, chunk); ns None: an astream_events event


class StreamEmitter:
    """Appends one run's stream parts to its event log in the peer's shapes."""

    def __init__(self, append: Callable[[str, Any], None], requested: list[str] | None, *, subgraphs: bool):
        self.append = append
        self.requested = set(requested or ["values"])
        self.subgraphs = subgraphs
        self.events = "events" in self.requested
        self._messages: dict[str, BaseMessage] = {}  # v1 `messages`: chunks accumulated per id

    @property
    def graph_modes(self) -> list[str]:
        """What to ask LangGraph for; `checkpoints` always (the step stops on them)."""
        return sorted({GRAPH_MODES[m] for m in self.requested if m in GRAPH_MODES} | {"checkpoints"})

    def wants(self, mode: str) -> bool:
        return mode in self.requested

    def emit(self, ns: tuple[str, ...], mode: str, chunk: Any) -> None:
        if mode == "messages":
            if "messages-tuple" in self.requested:
                self._named("messages", ns, chunk)
            elif "messages" in self.requested:
                self._message_v1(chunk)
            return
        if mode not in self.requested:
            return
        if mode == "debug":
            chunk = _debug_with_checkpoints(chunk)
        self._named(mode, ns, chunk)

    def event(self, event: dict[str, Any]) -> None:
        """An astream_events event that is not one of the graph's own stream parts."""
        if self.events and "langsmith:hidden" not in (event.get("tags") or ()):
            self.append("events", event)

    def _named(self, mode: str, ns: tuple[str, ...], chunk: Any) -> None:
        self.append("|".join((mode, *ns)) if ns else mode, chunk)

    def _message_v1(self, chunk: Any) -> None:
        message, metadata = chunk
        if isinstance(message, dict):
            message = convert_to_messages([message])[0]
        seen = self._messages.get(message.id)
        if seen is None:
            self._messages[message.id] = message
            self.append("messages/metadata", {message.id: {"metadata": metadata}})
        else:
            both_chunks = isinstance(seen, BaseMessageChunk) and isinstance(message, BaseMessageChunk)
            self._messages[message.id] = seen + message if both_chunks else message
        name = "messages/partial" if isinstance(message, BaseMessageChunk) else "messages/complete"
        self.append(name, [message_chunk_to_message(self._messages[message.id])])


def _checkpoint_ref(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config or "configurable" not in config:
        return None
    c = config["configurable"]
    if "thread_id" not in c or "checkpoint_id" not in c:
        return None
    ref = {
        "thread_id": c["thread_id"],
        "checkpoint_ns": c.get("checkpoint_ns") or "",
        "checkpoint_id": c["checkpoint_id"],
    }
    if "checkpoint_map" in c:
        ref["checkpoint_map"] = c["checkpoint_map"]
    return ref


def _debug_with_checkpoints(chunk: Any) -> Any:
    """The peer adds `checkpoint` / `parent_checkpoint` to debug checkpoint payloads, and
    replaces a task's subgraph `state` config with its `checkpoint`."""
    if not isinstance(chunk, dict) or chunk.get("type") != "checkpoint":
        return chunk
    payload = dict(chunk["payload"])
    payload["checkpoint"] = _checkpoint_ref(payload.get("config"))
    payload["parent_checkpoint"] = _checkpoint_ref(payload.get("parent_config"))
    tasks = []
    for task in payload.get("tasks") or ():
        task = dict(task)
        if isinstance(task.get("state"), dict) and "configurable" in task["state"]:
            task["checkpoint"] = _checkpoint_ref(task.pop("state"))
        tasks.append(task)
    payload["tasks"] = tasks
    return {**chunk, "payload": payload}


async def stream_parts(
    graph: Any,
    stream_input: Any,
    config: dict[str, Any],
    *,
    modes: list[str],
    subgraphs: bool,
    events: bool,
    continuation: bool,
    **kwargs: Any,
) -> AsyncGenerator[Part]:
    """The graph's stream parts as (ns, mode, chunk); with `events`, astream_events' other
    events as (None, "events", event). Closing the iterator (`aclose()`) stops the graph after
    the checkpoint it just wrote: the step runs with durability "sync"."""
    if not events:
        parts = graph.astream(stream_input, config, stream_mode=modes, subgraphs=subgraphs, **kwargs)
        try:
            async for part in parts:
                yield part if subgraphs else ((), *part)
        finally:
            # Explicitly, so what the graph does as it stops (durability "exit" writes its
            # checkpoint then) raises into whoever closes this iterator, not into the GC.
            await parts.aclose()
        return
    agen = graph.astream_events(stream_input, config, version="v2", stream_mode=modes, subgraphs=subgraphs, **kwargs)
    try:
        async for event in agen:
            root = not event.get("parent_ids")
            if root and event["event"] == "on_chain_stream":
                part = event["data"]["chunk"]
                yield part if subgraphs else ((), *part)
            elif root and continuation and event["event"] == "on_chain_start":
                continue  # one run spans several invocations: announce the graph's start once
            else:
                yield None, "events", event
    finally:
        await agen.aclose()  # as above: the graph's own stopping raises into the closer
