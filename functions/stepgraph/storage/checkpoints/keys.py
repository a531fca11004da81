"""The checkpoint table's key layout: one partition per thread (pk = thread_id), sorted so that one
Query returns a checkpoint together with its pending writes.

- ``C#{ns}#{checkpoint_id}``: a whole checkpoint (channel values included), its metadata and
  parent id. Checkpoint ids are uuid6, so key order is time order.
- ``C#{ns}#{checkpoint_id}#W#{task_id}#{idx}``: a pending write. It sorts right next to its
  checkpoint, so one Query returns a checkpoint together with its pending writes.
- ``H#{ns}``: the head, the id of the namespace's current checkpoint.

LangGraph joins namespaces with ":" and "|", never "#", so the prefixes of two namespaces can't overlap.
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig

from stepgraph.storage.dynamo import Item, s

CHECKPOINTS = "C#"  # every checkpoint and write of a thread, all namespaces
HEADS = "H#"  # every head of a thread
# Enough of an item to delete it and its spilled objects.
DELETE_PROJECTION = "pk, sk, checkpoint_ns, checkpoint_id, s3_key, metadata_s3_key, task_id"
# The attributes that name an item's spilled objects: its value's, and a checkpoint's metadata's.
SPILLED = ("s3_key", "metadata_s3_key")


def key(thread_id: str, sk: str) -> Item:
    return {"pk": s(thread_id), "sk": s(sk)}


def checkpoint_sk(ns: str, checkpoint_id: str = "") -> str:
    """A checkpoint's sort key; with no id, the prefix of the namespace's checkpoints and writes."""
    return f"C#{ns}#{checkpoint_id}"


def write_sk(ns: str, checkpoint_id: str, task_id: str, idx: int) -> str:
    return f"C#{ns}#{checkpoint_id}#W#{task_id}#{idx:010d}"


def head_sk(ns: str) -> str:
    return f"H#{ns}"


def ids(ns: str, checkpoint_id: str) -> Item:
    """The attributes that say which checkpoint an item belongs to."""
    return {"checkpoint_ns": s(ns), "checkpoint_id": s(checkpoint_id)}


def where(item: Item) -> tuple[str, str]:
    """The (namespace, checkpoint id) an item belongs to."""
    return item["checkpoint_ns"]["S"], item["checkpoint_id"]["S"]


def prefixed(prefix: str) -> tuple[str, Item]:
    """The key condition of the items whose sort key starts with `prefix`."""
    return "begins_with(sk, :p)", {":p": s(prefix)}


def listing(ns: str | None, checkpoint_id: str | None, before_id: str | None) -> tuple[str, Item]:
    """The narrowest key condition for a listing; the saver applies the exact filters."""
    if ns is None:
        return prefixed(CHECKPOINTS)
    if before_id and not checkpoint_id:  # ends at `before` itself: its writes and anything newer are out
        return "sk BETWEEN :lo AND :hi", {":lo": s(checkpoint_sk(ns)), ":hi": s(checkpoint_sk(ns, before_id))}
    return prefixed(checkpoint_sk(ns, checkpoint_id or ""))


def run_of(config: RunnableConfig) -> Item:
    """The `run_id` attribute of what a run writes under `config` (none outside a run): the engine
    puts the run id in the configurable and the metadata, and LangGraph passes both on."""
    run_id = config.get("configurable", {}).get("run_id") or config.get("metadata", {}).get("run_id")
    return {"run_id": s(run_id)} if isinstance(run_id, str) else {}


def thread_ns(config: RunnableConfig) -> tuple[str, str]:
    return config["configurable"]["thread_id"], config["configurable"].get("checkpoint_ns", "")


def config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}
