"""The LangGraph checkpoint saver on DynamoDB: BaseCheckpointSaver's reads, writes and deletes, and
their async twins. Key layout in `keys`, large values in `spill`, fenced commits in `commits`."""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextvars
import copy
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, Concatenate, ParamSpec, TypedDict, TypeVar, Unpack
from urllib.parse import quote

from botocore.exceptions import ClientError
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.base import SerializerProtocol

from stepgraph.serde import checkpoint_serde
from stepgraph.storage.checkpoints import keys
from stepgraph.storage.checkpoints.commits import Fence, FencedCommits, Group, put_with_head, write_each
from stepgraph.storage.checkpoints.spill import Spill
from stepgraph.storage.dynamo import Item, batch_write, is_conditional_failure, paginate, s

__all__ = ["DynamoDBSaver"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_P = ParamSpec("_P")

# The async twins' calls that reach AWS run here (sized like the clients' connection pools).
_IO = concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="stepgraph-checkpoint-io")
_IN_MAX = 100  # operands a DynamoDB IN (...) accepts
# A checkpoint's metadata stays in its item up to this size; larger, it spills (the run's metadata,
# up to a whole document, is part of it). The attributes that hold it: inline, spilled.
_METADATA_INLINE_BYTES = 64_000
_METADATA = ("metadata", "metadata_s3_key")


class _ListOptions(TypedDict, total=False):
    """`list`'s keyword arguments, which `alist` passes on."""

    filter: dict[str, Any] | None
    before: RunnableConfig | None
    limit: int | None


def _lingering_twin(
    sync: Callable[Concatenate[DynamoDBSaver, _P], _T], *, put: bool
) -> Callable[Concatenate[DynamoDBSaver, _P], Coroutine[Any, Any, _T]]:
    """The async twin of `put` or `put_writes`. Inline when it lingers (waits in memory for the
    group commit): it may still commit a full transaction or spill a large value to S3 on the
    loop, which is rare and no slower than the hop it saves elsewhere. Else on a worker thread."""

    async def twin(self: DynamoDBSaver, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if self._lingers(put=put):
            return sync(self, *args, **kwargs)
        return await self._off_loop(functools.partial(sync, self, *args, **kwargs))

    return twin


class DynamoDBSaver(BaseCheckpointSaver[str]):
    """Checkpoints in one table, partitioned by thread (the layout: `keys`). A payload over
    `spill_threshold_bytes` goes to S3 and the item keeps its key.

    A plain saver moves the head unconditionally; `fenced()` makes the move a compare-and-set.
    """

    # InMemorySaver's versions, so checkpoints look alike whichever saver wrote them. Versions key
    # no storage here: every checkpoint item carries its own channel values.
    get_next_version = InMemorySaver.get_next_version

    def __init__(
        self,
        *,
        dynamodb_client: Any,
        s3_client: Any,
        table: str,
        bucket: str,
        spill_threshold_bytes: int = 350_000,
        serde: SerializerProtocol | None = None,
    ) -> None:
        # Strict: a blob naming a class or function outside the allowlist revives nothing.
        super().__init__(serde=serde or checkpoint_serde())
        self.ddb, self.table = dynamodb_client, table
        self.spill = Spill(s3_client, bucket, spill_threshold_bytes)
        self._fence: FencedCommits | None = None

    def fenced(self, fence: Fence) -> DynamoDBSaver:
        """A saver sharing this one's clients whose commits must meet `fence`; see Fence."""
        clone = copy.copy(self)
        clone._fence = FencedCommits(fence, self.ddb, self.table, self.spill)
        return clone

    @property
    def expected_head(self) -> str | None:
        return self._fence.expected_head if self._fence else None

    def head(self, thread_id: str, checkpoint_ns: str = "") -> str | None:
        key = keys.key(thread_id, keys.head_sk(checkpoint_ns))
        item = self.ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item") or {}
        # No `head` attribute: no head. (moto applies a transaction's update in steps, so a read
        # racing a commit can see the item before its attribute; DynamoDB never shows that.)
        head: str | None = item.get("head", {}).get("S")
        return head

    # --- reads ---------------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        self.commit()  # a read sees this saver's own writes
        thread_id, ns = keys.thread_ns(config)
        checkpoint_id = get_checkpoint_id(config)
        fence = self._fence
        if fence is not None and fence.latest_of is not None:
            # One-shot: only the first read may use it.
            primed, latest = self._primed(config), fence.latest
            fence.latest = fence.latest_of = None
            if primed:
                return latest
        # Small pages: the newest checkpoint comes right after its own, usually few, pending
        # writes, and every item of a page carries a (possibly large) blob.
        items = self._query(thread_id, *keys.prefixed(keys.checkpoint_sk(ns, checkpoint_id or "")), page=4)
        return next(self._tuples(thread_id, items, ns, checkpoint_id), None)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        self.commit()
        ns = config["configurable"].get("checkpoint_ns") if config else None
        checkpoint_id = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        cond, values = keys.listing(ns, checkpoint_id, before_id)
        threads = [config["configurable"]["thread_id"]] if config else self._thread_ids()

        def found() -> Iterator[CheckpointTuple]:
            for thread_id in threads:
                items = self._query(thread_id, cond, values, page=64)
                yield from self._tuples(thread_id, items, ns, checkpoint_id, before_id, filter)

        yield from islice(found(), None if limit is None else max(limit, 0))

    def _tuples(
        self,
        thread_id: str,
        items: Iterable[Item],
        ns: str | None,
        checkpoint_id: str | None,
        before_id: str | None = None,
        filter: dict[str, Any] | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints of a newest-first item stream, each with the writes just before it."""
        writes: builtins.list[Item] = []
        for item in items:
            if "task_id" in item:
                writes.append(item)
                continue
            item_ns, item_id = where = keys.where(item)
            mine = [w for w in writes if keys.where(w) == where]
            writes = []
            if (ns is not None and item_ns != ns) or (checkpoint_id and item_id != checkpoint_id):
                continue
            if before_id and item_id >= before_id:
                continue
            metadata = self.serde.loads_typed((item["metadata_type"]["S"], self.spill.data(item, *_METADATA)))
            if filter and any(metadata.get(k) != v for k, v in filter.items()):
                continue
            mine.sort(key=lambda w: writes_sort_key(w["task_path"]["S"], w["task_id"]["S"], int(w["idx"]["N"])))
            parent = item.get("parent_checkpoint_id", {}).get("S")
            yield CheckpointTuple(
                config=keys.config(thread_id, item_ns, item_id),
                checkpoint=self._load(item),
                metadata=metadata,
                parent_config=keys.config(thread_id, item_ns, parent) if parent else None,
                pending_writes=[(w["task_id"]["S"], w["channel"]["S"], self._load(w)) for w in mine],
            )

    # --- writes --------------------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread_id, ns = keys.thread_ns(config)
        checkpoint_id, parent_id = checkpoint["id"], config["configurable"].get("checkpoint_id")
        metadata = get_checkpoint_metadata(config, metadata)
        metadata_type, metadata_bytes = self.serde.dumps_typed(metadata)
        # The metadata (the run's, the assistant's: what clients send, up to a document each) and
        # the checkpoint share one item: a large metadata spills, and the checkpoint spills at what
        # the metadata leaves of the item.
        spilled, metadata_key = self.spill.payload(
            metadata_type,
            metadata_bytes,
            thread_id,
            ns,
            checkpoint_id,
            "metadata",
            threshold_bytes=_METADATA_INLINE_BYTES,
        )
        inline_metadata = len(metadata_bytes) if metadata_key is None else 0
        payload, s3_key = self._dump(checkpoint, thread_id, ns, checkpoint_id, "checkpoint", room=inline_metadata)
        item = {
            **keys.key(thread_id, keys.checkpoint_sk(ns, checkpoint_id)),
            **keys.ids(ns, checkpoint_id),
            "metadata_type": s(metadata_type),
            **({"metadata": {"B": metadata_bytes}} if metadata_key is None else {"metadata_s3_key": spilled["s3_key"]}),
            **payload,
        }
        if parent_id:
            item["parent_checkpoint_id"] = s(parent_id)
        if isinstance(metadata.get("run_id"), str):  # top-level, so delete_for_runs can filter on it
            item["run_id"] = s(metadata["run_id"])
        if self._fence is None:
            put_with_head(self.ddb, self.table, item)
        else:
            self._fence.latest = self._fence.latest_of = None  # a put makes the primed head stale
            size = inline_metadata + len(payload.get("data", {}).get("B", b""))
            group = Group([item], [True], {ns: checkpoint_id}, size, [k for k in (s3_key, metadata_key) if k])
            self._fence.enqueue(group)
        return keys.config(thread_id, ns, checkpoint_id)

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        thread_id, ns = keys.thread_ns(config)
        checkpoint_id = config["configurable"]["checkpoint_id"]
        # The run that wrote it, so that its rollback removes it even from another run's checkpoint
        # (a resume writes on the checkpoint its predecessor parked on).
        run_tag = keys.run_of(config)
        group = Group([], [], {}, 0, [])
        for idx, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, idx)
            name = f"writes/{quote(task_id, safe='')}/{idx}"
            payload, s3_key = self._dump(value, thread_id, ns, checkpoint_id, name)
            group.items.append(
                {
                    **keys.key(thread_id, keys.write_sk(ns, checkpoint_id, task_id, idx)),
                    **keys.ids(ns, checkpoint_id),
                    "task_id": s(task_id),
                    "task_path": s(task_path),
                    "channel": s(channel),
                    "idx": {"N": str(idx)},
                    **run_tag,
                    **payload,
                }
            )
            # Special channels (error, interrupt, ...) keep the latest value; a regular write is
            # first-writer-wins, so a duplicated task can't replace a result already stored.
            group.conditional.append(idx >= 0)
            group.size += len(payload.get("data", {}).get("B", b""))
            group.s3_keys.extend([s3_key] if s3_key else [])
        # Writes need no fence of their own: they hang off a checkpoint that already passed it, and
        # a duplicate can only offer the result of the same task run from the same state. Lingering
        # writes are committed with the lease check all the same.
        if self._fence is not None and self._fence.linger_seconds is not None:
            self._fence.enqueue(group)
        else:
            write_each(self.ddb, self.table, self.spill, group)

    def commit(self) -> None:
        """Write every pending put and write of a grouping fenced saver (nothing to do otherwise).
        Raises HeadConflict, and drops what was pending, if the head moved or the lease is gone;
        also raises what a background commit met since the last call."""
        if self._fence is not None:
            self._fence.commit()

    def pending_channels(self) -> set[str]:
        """The channels of the writes a grouping fenced saver holds uncommitted."""
        return set() if self._fence is None else self._fence.pending_channels()

    def abandon(self) -> None:
        """Forget what is pending: the invocation is ending without committing it."""
        if self._fence is not None:
            self._fence.abandon()

    # --- deletes and copies --------------------------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        self._delete_items(self._query(thread_id, projection=keys.DELETE_PROJECTION))
        self.spill.delete_thread(thread_id)

    def delete_for_runs(self, run_ids: Sequence[str], *, thread_id: str | None = None) -> None:
        """Delete the checkpoints the runs put (with every write on them) and the writes they made on
        other runs' checkpoints (a resume's, on the checkpoint it resumed). With `thread_id`, one
        Query of that thread's partition, as every caller on a request path does; without (the base
        class's contract, which names no thread), a Scan of the table."""
        run_ids = list(dict.fromkeys(run_ids))
        touched: set[tuple[str, str]] = set()
        for i in range(0, len(run_ids), _IN_MAX):
            values = {f":r{j}": s(r) for j, r in enumerate(run_ids[i : i + _IN_MAX])}
            request: dict[str, Any] = {
                "FilterExpression": f"#r IN ({', '.join(values)})",
                "ExpressionAttributeNames": {"#r": "run_id"},
                "ProjectionExpression": keys.DELETE_PROJECTION,
            }
            if thread_id is None:
                found = self._scan(ExpressionAttributeValues=values, **request)
            else:
                found = self._query(thread_id, values=values, **request)
            items = builtins.list(found)
            checkpoints = {(i["pk"]["S"], *keys.where(i)) for i in items if "task_id" not in i}
            for owner, ns, cid in checkpoints:
                self._delete_checkpoint_items(owner, ns, cid)
                touched.add((owner, ns))
            # Writes on checkpoints that stay (those of deleted checkpoints went with them).
            self._delete_items(i for i in items if "task_id" in i and (i["pk"]["S"], *keys.where(i)) not in checkpoints)
        for owner, ns in touched:
            self._repair_head(owner, ns)

    def delete_checkpoint(self, thread_id: str, checkpoint_id: str, checkpoint_ns: str = "") -> None:
        """Delete one checkpoint and its pending writes; a head that named it names the newest survivor."""
        self._delete_checkpoint_items(thread_id, checkpoint_ns, checkpoint_id)
        self._repair_head(thread_id, checkpoint_ns)

    def _delete_checkpoint_items(self, thread_id: str, ns: str, checkpoint_id: str) -> None:
        mine = keys.prefixed(keys.checkpoint_sk(ns, checkpoint_id))  # the checkpoint and its writes
        self._delete_items(self._query(thread_id, *mine, projection=keys.DELETE_PROJECTION))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        def copies() -> Iterator[Item]:
            for item in self._query(source_thread_id):  # heads included
                item = {**item, "pk": s(target_thread_id)}
                for name in keys.SPILLED:
                    if name in item:
                        item[name] = s(self.spill.copy(item[name]["S"], source_thread_id, target_thread_id))
                yield {"PutRequest": {"Item": item}}

        batch_write(self.ddb, self.table, copies())

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}")
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
                continue
            everything = keys.prefixed(keys.CHECKPOINTS)
            items = list(self._query(thread_id, *everything, projection=keys.DELETE_PROJECTION))
            latest: dict[str, str] = {}
            for ns, cid in (keys.where(i) for i in items if "task_id" not in i):
                latest[ns] = max(latest.get(ns, ""), cid)
            self._delete_items(i for i in items if keys.where(i) not in latest.items())
            for ns in latest:
                self._repair_head(thread_id, ns)

    def _repair_head(self, thread_id: str, ns: str) -> None:
        """Point a head whose checkpoint was deleted at the newest survivor, or drop it. Conditional
        on the head being unchanged, so it never undoes a put that raced with the deletion."""
        head = self.head(thread_id, ns)
        if head is None:
            return
        key = keys.key(thread_id, keys.checkpoint_sk(ns, head))
        found = self.ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True, ProjectionExpression="pk")
        if "Item" in found:
            return
        namespace = keys.prefixed(keys.checkpoint_sk(ns))
        items = self._query(thread_id, *namespace, page=16, projection=keys.DELETE_PROJECTION)
        newest = next((i["checkpoint_id"]["S"] for i in items if "task_id" not in i), None)
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": keys.key(thread_id, keys.head_sk(ns)),
            "ConditionExpression": "#h = :old",
            "ExpressionAttributeNames": {"#h": "head"},
            "ExpressionAttributeValues": {":old": s(head)},
        }
        try:
            if newest is None:
                self.ddb.delete_item(**kwargs)
            else:
                kwargs["ExpressionAttributeValues"][":new"] = s(newest)
                self.ddb.update_item(UpdateExpression="SET #h = :new", **kwargs)
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise
            # A put moved the head meanwhile: it names a live checkpoint, all the repair was for.
            logger.debug("thread %s, namespace %r: head moved during its repair, left as it is", thread_id, ns)

    # --- async twins ---------------------------------------------------------------------------
    # boto3 is synchronous: a call that reaches AWS runs in a worker thread, so the engine loop
    # keeps driving the run's other nodes. What a fenced saver answers from memory (the primed
    # first read, a put or write that lingers for the group commit) runs inline: in batched mode
    # that is every call of a superstep, and a thread hop each would cost more than the call.

    async def _off_loop(self, call: Callable[..., _T], *args: Any) -> _T:
        """`call(*args)` in a worker thread; a fenced saver keeps track of it until settle()."""
        # In the caller's context, as asyncio.to_thread would run it.
        future = _IO.submit(contextvars.copy_context().run, call, *args)
        fence = self._fence
        if fence is not None:
            with fence.lock:
                fence.inflight.add(future)
            future.add_done_callback(fence.inflight.discard)
        return await asyncio.wrap_future(future)

    def holds(self, checkpoint_id: str) -> bool:
        """A fenced saver has committed, or holds for its group commit, this root checkpoint."""
        return self._fence is not None and self._fence.holds(checkpoint_id)

    def settle(self) -> None:
        """Wait for the async twins' calls still running (the graph may have stopped without
        awaiting them: astream_events runs it in a task of its own); raise what one met."""
        if self._fence is not None:
            self._fence.settle()

    def _primed(self, config: RunnableConfig) -> bool:
        """`config` asks for what the fence was primed with: its thread's newest root checkpoint."""
        fence = self._fence
        thread_id, ns = keys.thread_ns(config)
        return fence is not None and fence.latest_of == thread_id and ns == "" and not get_checkpoint_id(config)

    def _answers_from_memory(self, config: RunnableConfig) -> bool:
        """get_tuple would answer without a request: primed, and nothing to commit first."""
        fence = self._fence
        return self._primed(config) and fence is not None and not fence.pending and fence.error is None

    def _lingers(self, put: bool) -> bool:
        fence = self._fence
        return (
            fence is not None
            and fence.linger_seconds is not None
            and fence.error is None
            and (fence.linger_puts or not put)
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        if self._answers_from_memory(config):
            return self.get_tuple(config)
        return await self._off_loop(self.get_tuple, config)

    async def alist(
        self, config: RunnableConfig | None, **options: Unpack[_ListOptions]
    ) -> AsyncIterator[CheckpointTuple]:
        # In batches, so a long history streams instead of loading whole before the first yield.
        found = self.list(config, **options)
        while batch := await asyncio.to_thread(lambda: list(islice(found, 16))):
            for tup in batch:
                yield tup

    aput = _lingering_twin(put, put=True)
    aput_writes = _lingering_twin(put_writes, put=False)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str], *, thread_id: str | None = None) -> None:
        await asyncio.to_thread(functools.partial(self.delete_for_runs, run_ids, thread_id=thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

    # --- storage helpers -----------------------------------------------------------------------

    def _dump(
        self, value: Any, thread_id: str, ns: str, checkpoint_id: str, name: str, *, room: int = 0
    ) -> tuple[Item, str | None]:
        """`value`'s attributes; spilled over the threshold less `room` (what else the item holds)."""
        type_, data = self.serde.dumps_typed(value)
        threshold = self.spill.threshold_bytes - room
        return self.spill.payload(type_, data, thread_id, ns, checkpoint_id, name, threshold_bytes=threshold)

    def _load(self, item: Item) -> Any:
        return self.serde.loads_typed((item["type"]["S"], self.spill.data(item)))

    def _query(
        self,
        thread_id: str,
        cond: str = "",
        values: Item | None = None,
        *,
        page: int = 0,
        projection: str = "",
        **request: Any,
    ) -> Iterator[Item]:
        """A thread's items, newest first, fetched page by page as the caller consumes them
        (`request`: more of the Query's parameters, a FilterExpression say)."""
        return paginate(
            self.ddb.query,
            TableName=self.table,
            ScanIndexForward=False,
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk" + (f" AND {cond}" if cond else ""),
            ExpressionAttributeValues={":pk": s(thread_id), **(values or {})},
            **({"Limit": page} if page else {}),
            **({"ProjectionExpression": projection} if projection else {}),
            **request,
        )

    def _scan(self, **request: Any) -> Iterator[Item]:
        return paginate(self.ddb.scan, TableName=self.table, ConsistentRead=True, **request)

    def _thread_ids(self) -> builtins.list[str]:
        # Every namespace with a checkpoint has a head, so head items enumerate the threads. A Scan:
        # only `list(None)` (BaseCheckpointSaver's listing of every thread) needs it, and no route
        # or function calls that; every listing on a request path names its thread.
        cond, values = keys.prefixed(keys.HEADS)
        heads = self._scan(FilterExpression=cond, ExpressionAttributeValues=values, ProjectionExpression="pk")
        return list(dict.fromkeys(item["pk"]["S"] for item in heads))

    def _delete_items(self, items: Iterable[Item]) -> None:
        # Items before their objects: a crash in between orphans objects, but never leaves an item
        # pointing at a missing one.
        items = list(items)
        batch_write(self.ddb, self.table, ({"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in items))
        self.spill.delete([i[name]["S"] for i in items for name in keys.SPILLED if name in i])
