"""Thread state as the API shows it: LangGraph's StateSnapshot read through our checkpointer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from stepgraph import serde
from stepgraph.engine.context import Context
from stepgraph.engine.graphs import CompiledGraph


def thread_graph(ctx: Context, thread: dict[str, Any]) -> str | None:
    """The graph a thread was last run with (stamped in its metadata), if this deployment has it."""
    graph_id = (thread.get("metadata") or {}).get("graph_id")
    return graph_id if graph_id in ctx.graphs.specs else None


def bound_graph(ctx: Context, graph_id: str) -> CompiledGraph:
    return ctx.graphs.get(graph_id).copy(update={"checkpointer": ctx.checkpointer})


def state_config(thread_id: str, checkpoint: dict[str, Any] | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    for key, value in (checkpoint or {}).items():
        if value is not None and key != "thread_id":
            configurable[key] = value
    return {"configurable": configurable}


def get_thread_state(
    ctx: Context,
    thread_id: str,
    graph_id: str,
    checkpoint: dict[str, Any] | None = None,
    *,
    subgraphs: bool = False,
) -> StateSnapshot:
    return bound_graph(ctx, graph_id).get_state(state_config(thread_id, checkpoint), subgraphs=subgraphs)


def _checkpoint_ref(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    c = config["configurable"]
    return {
        "thread_id": c["thread_id"],
        "checkpoint_ns": c.get("checkpoint_ns", ""),
        "checkpoint_id": c.get("checkpoint_id"),
        "checkpoint_map": c.get("checkpoint_map"),
    }


def snapshot_to_wire(snapshot: StateSnapshot) -> dict[str, Any]:
    """The peer's ThreadState shape."""
    tasks = []
    for task in snapshot.tasks:
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path),
                "error": repr(task.error) if task.error else None,
                "interrupts": serde.to_jsonable(list(task.interrupts)),
                "checkpoint": _checkpoint_ref(task.state) if isinstance(task.state, dict) else None,
                "state": snapshot_to_wire(task.state) if isinstance(task.state, StateSnapshot) else None,
                "result": serde.to_jsonable(task.result) if task.result is not None else None,
            }
        )
    values = snapshot.values
    return {
        "values": serde.to_jsonable(values) if values is not None else {},
        "next": list(snapshot.next),
        "tasks": tasks,
        "metadata": serde.to_jsonable(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "checkpoint": _checkpoint_ref(snapshot.config)
        or {"thread_id": None, "checkpoint_ns": "", "checkpoint_id": None, "checkpoint_map": None},
        "parent_checkpoint": _checkpoint_ref(snapshot.parent_config),
        "interrupts": serde.to_jsonable(list(snapshot.interrupts)),
    }
