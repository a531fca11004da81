"""Thread state as the API shows it: LangGraph's StateSnapshot read through our checkpointer; and
a client's update of it, committed like a step's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from stepgraph import serde
from stepgraph.client_errors import redact
from stepgraph.engine.context import Context
from stepgraph.engine.graphs import CompiledGraph, with_checkpointer
from stepgraph.storage import Fence, LeaseCondition

# An update's checkpoints wait in memory for one commit (never for this long: it commits at once).
_UPDATE_LINGER_SECONDS = 60.0


def thread_graph(ctx: Context, thread: dict[str, Any]) -> str | None:
    """The graph a thread was last run with (stamped in its metadata), if this deployment has it."""
    graph_id = (thread.get("metadata") or {}).get("graph_id")
    return graph_id if graph_id in ctx.graphs.specs else None


def bound_graph(ctx: Context, graph_id: str) -> CompiledGraph:
    return with_checkpointer(ctx.graphs.get(graph_id), ctx.checkpointer)


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


def update_thread_state(
    ctx: Context,
    thread_id: str,
    graph_id: str,
    checkpoint: dict[str, Any] | None,
    values: Any,
    *,
    as_node: str | None = None,
) -> RunnableConfig:
    """Apply a client's update as a new checkpoint, fenced as a step's commit is: everything the
    update writes is one transaction with a compare-and-set of the thread's head (the head read
    before the update was computed) and a check that no run holds or waits for the thread.

    Of two updates from one head, one commits and the other raises HeadConflict("head"); a run
    admitted (or queued) before the commit makes it raise HeadConflict("lease"), and one admitted
    after it starts from the updated state. Nothing is written when it raises. LangGraph's
    ValueError, KeyError, TypeError or InvalidUpdateError (an unknown node, values its reducers
    refuse) also leave the thread as it was."""
    idle = LeaseCondition(
        table=ctx.settings.threads_table,
        key={"thread_id": {"S": thread_id}},
        expression="attribute_exists(thread_id) AND attribute_not_exists(active_run_id) "
        "AND attribute_not_exists(pending)",
    )
    head = ctx.checkpointer.head(thread_id)
    saver = ctx.checkpointer.fenced(Fence(head, lease=idle, linger_seconds=_UPDATE_LINGER_SECONDS))
    graph = with_checkpointer(ctx.graphs.get(graph_id), saver)
    try:
        config = graph.update_state(state_config(thread_id, checkpoint), values, as_node=as_node)
        saver.commit()
    finally:
        saver.abandon()  # an update that raised leaves nothing behind
    return config


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
                "error": redact(repr(task.error)) if task.error else None,
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
