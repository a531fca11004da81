"""The thread-centric streaming protocol (langchain-protocol, what `client.threads.stream(...)`
speaks): a thread's runs, read from their event logs, as protocol events on channels.

A run started through the protocol records every stream mode a channel is made of; the API
reads its log like any run's and turns each logged event into protocol events here, one
`RunTranslator` per run and connection. Lifecycle and input events are derived from the log
(the run's first event, its interrupts, its end marker), so nothing extra is written.

Positions: a protocol event's `seq` encodes (run, seq in the run's log) as one integer,
`(run's ms since the thread's creation) << 20 | seq`, so `since` works across runs and
connections. Two runs of one thread created in the same millisecond share the high part;
a run's log beyond 2**20 events wraps into the next millisecond's range.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

from stepgraph.storage import END, Event
from stepgraph.vocabulary import RunStatus

__all__ = [
    "CHANNELS",
    "RUN_STREAM_MODES",
    "RunTranslator",
    "matches",
    "run_position",
    "thread_seq",
]

RUN_STREAM_MODES = ["values", "updates", "messages-tuple", "custom", "checkpoints", "tasks"]
CHANNELS = ("values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints", "tasks", "custom")

_SEQ_BITS = 20
_SEQ_MASK = (1 << _SEQ_BITS) - 1
_LAST = _SEQ_MASK  # the position of a run's terminal lifecycle event


def _run_ms(run_id: str) -> int:
    return uuid.UUID(run_id).int >> 80  # a UUIDv7's unix milliseconds


def thread_ms(thread: dict[str, Any]) -> int:
    try:
        return int(datetime.fromisoformat(thread["created_at"]).timestamp() * 1000)
    except (KeyError, TypeError, ValueError):
        return 0


def thread_seq(base_ms: int, run_id: str, seq: int) -> int:
    return (max(0, _run_ms(run_id) - base_ms) << _SEQ_BITS) | min(seq, _LAST)


def run_position(base_ms: int, since: int, run_id: str) -> int | None:
    """Where to read a run's log after the cursor `since`: None if the run is wholly before it,
    0 for a run wholly after, else the log seq the cursor names."""
    ms = max(0, _run_ms(run_id) - base_ms)
    cursor_ms, cursor_seq = since >> _SEQ_BITS, since & _SEQ_MASK
    if ms < cursor_ms:
        return None
    if ms > cursor_ms:
        return 0
    return None if cursor_seq >= _LAST else cursor_seq


def matches(event: dict[str, Any], channels: set[str], namespaces: list[list[str]] | None, depth: int | None) -> bool:
    """The subscription filter: channel, then namespace prefix (a segment without `:` also
    matches `name:<task id>`) within `depth` levels below it."""
    method = event["method"]
    if method == "input.requested":
        channel = "input"
    elif method == "custom":
        name = (event["params"].get("data") or {}).get("name")
        channel = f"custom:{name}" if name else "custom"
    else:
        channel = method
    if channel not in channels and not (channel.startswith("custom:") and "custom" in channels):
        return False
    if not namespaces:
        return True
    ns = event["params"]["namespace"]
    for prefix in namespaces:
        if len(prefix) > len(ns) or (depth is not None and len(ns) - len(prefix) > depth):
            continue
        if all(c == p or (":" not in p and c.split(":", 1)[0] == p) for p, c in zip(prefix, ns)):
            return True
    return False


class RunTranslator:
    """One run's logged events as protocol events, for one connection."""

    def __init__(self, run: dict[str, Any], base_ms: int):
        self.run, self.base_ms = run, base_ms
        self.run_id = run["run_id"]
        self.graph_name = run.get("graph_id") or ""
        self.interrupted = False
        self._seen_interrupts: set[str] = set()
        self.error: Any = None
        self._open: dict[str, dict[str, Any]] = {}  # message id → {"ns", "text"}

    # ------------------------------------------------------------ envelope
    def _event(self, seq: int, method: str, data: Any, namespace: list[str] | None = None) -> dict[str, Any]:
        return {
            "type": "event",
            "method": method,
            "params": {"namespace": namespace or [], "timestamp": int(time.time() * 1000), "data": data},
            "seq": thread_seq(self.base_ms, self.run_id, seq),
        }

    def _identified(self, seq: int, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Ids stable across connections (the client drops an event it has seen by its id).
        for i, event in enumerate(events):
            event["event_id"] = f"{self.run_id}:{seq}:{i}"
        return events

    def started(self) -> list[dict[str, Any]]:
        return self._identified(0, [self._event(0, "lifecycle", {"event": "started", "graph_name": self.graph_name})])

    def translate(self, event: Event) -> list[dict[str, Any]]:
        if event.event == END:
            return self._identified(_LAST, self._ended(event.data or {}))
        return self._identified(event.seq, self._translate(event))

    def _translate(self, event: Event) -> list[dict[str, Any]]:
        mode, *ns = event.event.split("|")
        out: list[dict[str, Any]] = []
        if mode != "messages":
            out.extend(self._finish_messages(event.seq, ns))
        if mode == "values":
            out.append(self._event(event.seq, "values", event.data, ns))
        elif mode == "updates":
            out.extend(self._updates(event.seq, event.data, ns))
        elif mode == "custom":
            out.append(self._event(event.seq, "custom", {"payload": event.data}, ns))
        elif mode == "checkpoints":
            out.append(self._event(event.seq, "checkpoints", _checkpoint(event.data), ns))
        elif mode == "tasks":
            out.append(self._event(event.seq, "tasks", event.data, ns))
        elif mode == "messages":
            out.extend(self._message(event.seq, event.data, ns))
        elif mode == "error":
            self.error = event.data
        return out

    # ------------------------------------------------------------ channels
    def _updates(self, seq: int, chunk: Any, ns: list[str]) -> list[dict[str, Any]]:
        out = []
        for node, values in (chunk or {}).items() if isinstance(chunk, dict) else ():
            if node != "__interrupt__":
                out.append(self._event(seq, "updates", {"node": node, "values": values}, ns))
                continue
            for interrupt in values or ():
                interrupt_id = interrupt.get("id") if isinstance(interrupt, dict) else None
                if not interrupt_id or interrupt_id in self._seen_interrupts:
                    continue  # a subgraph's interrupt is reported again by each parent
                self._seen_interrupts.add(interrupt_id)
                self.interrupted = True
                value = interrupt.get("value")
                data = {"interrupt_id": interrupt_id, "payload": value, "value": value}
                out.append(self._event(seq, "input.requested", data, ns))
        return out

    def _message(self, seq: int, data: Any, ns: list[str]) -> list[dict[str, Any]]:
        if not isinstance(data, (list, tuple)) or len(data) != 2 or not isinstance(data[0], dict):
            return []
        message, metadata = data
        kind = message.get("type", "")
        message_id = str(message.get("id") or f"{self.run_id}:{seq}")
        text = _text(message.get("content"))
        if kind == "tool":
            result = {
                "event": "tool-finished",
                "tool_call_id": message.get("tool_call_id"),
                "output": message.get("content"),
            }
            return [self._event(seq, "tools", result, ns)]
        role = {"human": "human", "HumanMessageChunk": "human", "system": "system"}.get(kind, "ai")
        out = []
        if message_id not in self._open:
            scalars = {k: v for k, v in (metadata or {}).items() if v is None or isinstance(v, (bool, int, float, str))}
            start = {"event": "message-start", "role": role, "id": message_id, "metadata": scalars}
            out.append(self._event(seq, "messages", start, ns))
            block = {"event": "content-block-start", "index": 0, "content": {"type": "text", "text": ""}}
            out.append(self._event(seq, "messages", block, ns))
            self._open[message_id] = {"ns": ns, "text": ""}
        if text:
            self._open[message_id]["text"] += text
            delta = {"event": "content-block-delta", "index": 0, "delta": {"type": "text-delta", "text": text}}
            out.append(self._event(seq, "messages", delta, ns))
        if not kind.endswith("Chunk"):  # a whole message: nothing more will come for it
            out.extend(self._finish_message(seq, message_id))
            for call in message.get("tool_calls") or ():
                started = {
                    "event": "tool-started",
                    "tool_call_id": call.get("id"),
                    "tool_name": call.get("name"),
                    "input": call.get("args"),
                }
                out.append(self._event(seq, "tools", started, ns))
        return out

    def _finish_message(self, seq: int, message_id: str) -> list[dict[str, Any]]:
        state = self._open.pop(message_id)
        block = {"event": "content-block-finish", "index": 0, "content": {"type": "text", "text": state["text"]}}
        return [
            self._event(seq, "messages", block, state["ns"]),
            self._event(seq, "messages", {"event": "message-finish"}, state["ns"]),
        ]

    def _finish_messages(self, seq: int, ns: list[str] | None = None) -> list[dict[str, Any]]:
        """Streamed messages end when their node's step reports anything else."""
        out = []
        for message_id in [m for m, s in self._open.items() if ns is None or s["ns"] == ns]:
            out.extend(self._finish_message(seq, message_id))
        return out

    def _ended(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._finish_messages(_LAST)
        status = data.get("status")
        if status == RunStatus.SUCCESS and self.interrupted:
            out.append(self._event(_LAST, "lifecycle", {"event": "interrupted", "graph_name": self.graph_name}))
        elif status == RunStatus.SUCCESS:
            out.append(self._event(_LAST, "lifecycle", {"event": "completed", "graph_name": self.graph_name}))
        else:
            message = self.error.get("message") if isinstance(self.error, dict) else None
            reason = message or (
                "run cancelled" if status == RunStatus.INTERRUPTED else f"run ended with status {status}"
            )
            out.append(
                self._event(_LAST, "lifecycle", {"event": "failed", "graph_name": self.graph_name, "error": reason})
            )
        return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return ""


def _checkpoint(chunk: Any) -> Any:
    """LangGraph's `checkpoints` part as the protocol's Checkpoint {id, parent_id, step, source}."""
    if not isinstance(chunk, dict) or "config" not in chunk:
        return chunk
    metadata = chunk.get("metadata") or {}
    out = {
        "id": ((chunk.get("config") or {}).get("configurable") or {}).get("checkpoint_id"),
        "step": metadata.get("step", -1),
        "source": metadata.get("source", "loop"),
    }
    parent = ((chunk.get("parent_config") or {}).get("configurable") or {}).get("checkpoint_id")
    if parent:
        out["parent_id"] = parent
    return out
