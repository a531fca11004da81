"""LangGraph checkpoints on DynamoDB (large blobs spill to S3), with a compare-and-set on each thread's
head so that a Step Lambda invoked twice for the same superstep can never fork the thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any
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
    SerializerProtocol,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.memory import InMemorySaver

from stepgraph.storage.errors import HeadConflict

__all__ = ["DynamoDBSaver", "HeadConflict", "LeaseCondition"]

# The async twins' calls that reach AWS run here (sized like the clients' connection pools).
_IO = concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="stepgraph-checkpoint-io")
_BATCH = 25  # BatchWriteItem's maximum
_IN_MAX = 100  # operands a DynamoDB IN (...) accepts
_S3_BATCH = 1000  # DeleteObjects' maximum
_KEYS = "pk, sk, checkpoint_ns, checkpoint_id, s3_key, task_id"  # enough to delete an item and its blob
# TransactWriteItems takes at most 100 actions and 4 MB; a commit stays below both.
_TX_ACTIONS = 100
_TX_BYTES = 3_500_000


@dataclass(frozen=True)
class LeaseCondition:
    """An item of another table that must still match `expression` for a fenced put to commit."""

    table: str
    key: dict[str, Any]
    expression: str
    values: dict[str, Any] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def _check(self) -> dict[str, Any]:
        check = {"TableName": self.table, "Key": self.key, "ConditionExpression": self.expression}
        optional = {"ExpressionAttributeValues": self.values, "ExpressionAttributeNames": self.names}
        return {"ConditionCheck": {**check, **{k: v for k, v in optional.items() if v}}}


@dataclass
class _Group:
    """What one put or put_writes call stores: committed together, never split across commits."""

    items: list[dict[str, Any]]
    conditional: list[bool]  # per item: only if absent (first writer wins)
    heads: dict[str, str]  # namespace → the checkpoint id its head moves to
    size: int
    s3_keys: list[str]


class _Fence:
    # Shared by reference: LangGraph clones its checkpointer (with_allowlist), and every clone must
    # see the head advance, or the run's second put would compare against a stale head.
    def __init__(
        self,
        expected_head: str | None,
        lease: LeaseCondition | None,
        latest: CheckpointTuple | None = None,
        latest_of: str | None = None,
        linger_seconds: float | None = None,
        linger_puts: bool = True,
        rider: dict[str, Any] | None = None,
    ):
        self.expected_head, self.lease, self.lock = expected_head, lease, threading.RLock()
        # The head checkpoint the caller already read (None: the thread had none), and its
        # thread: LangGraph's first read gets it for free.
        self.latest, self.latest_of = latest, latest_of
        # Group commit: puts and writes wait here, and one transaction writes them.
        self.linger_seconds, self.linger_puts = linger_seconds, linger_puts
        self.pending: list[_Group] = []
        self.timer: threading.Timer | None = None  # commits what is pending once it is due
        self.error: BaseException | None = None  # what that background commit met
        # A transaction action the first commit carries along; its condition failing counts as a
        # lost lease.
        self.riders: list[dict[str, Any]] = [rider] if rider else []
        # Calls that reach AWS from the async twins, in worker threads: one whose awaiting task
        # was cancelled (the graph stopped under it) still runs to its end; settle() waits for it.
        self.inflight: set[concurrent.futures.Future[Any]] = set()


class DynamoDBSaver(BaseCheckpointSaver[str]):
    """Checkpoints in one table, partitioned by thread (pk = thread_id), with these sort keys:

    - ``C#{ns}#{checkpoint_id}``: a whole checkpoint (channel values included), its metadata and
      parent id. Checkpoint ids are uuid6, so key order is time order.
    - ``C#{ns}#{checkpoint_id}#W#{task_id}#{idx}``: a pending write. It sorts right next to its
      checkpoint, so one Query returns a checkpoint together with its pending writes.
    - ``H#{ns}``: the head, the id of the namespace's current checkpoint.

    A payload over `spill_threshold_bytes` goes to S3 and the item keeps its key. LangGraph joins
    namespaces with ":" and "|", never "#", so the prefixes of two namespaces can't overlap.
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
        super().__init__(serde=serde)
        self.ddb, self.s3, self.table, self.bucket = dynamodb_client, s3_client, table, bucket
        self.spill_threshold_bytes = spill_threshold_bytes
        self._fence: _Fence | None = None

    def fenced(
        self,
        expected_head: str | None,
        lease: LeaseCondition | None = None,
        *,
        latest: CheckpointTuple | None = None,
        latest_of: str | None = None,
        linger_seconds: float | None = None,
        linger_puts: bool = True,
        rider: dict[str, Any] | None = None,
    ) -> DynamoDBSaver:
        """A saver sharing this one's clients whose root-namespace puts commit only if the head is
        still `expected_head` (None: the thread has no checkpoint yet) and `lease` still holds.

        `expected_head` is the head the invocation *observed* when it loaded the thread, not the
        parent of what it puts: a run resuming from an older checkpoint X (a fork) puts a child of
        X, yet must still lose to anything that moved the head since it looked. Each successful
        put advances the expected head, so a run puts successive checkpoints. Of two invocations
        running one superstep from one head, exactly one put commits; the other raises HeadConflict.

        Subgraph namespaces are fenced by the lease only: their heads aren't known when the run
        starts. Writes need no fence of their own: they hang off a checkpoint that already passed
        it and are first-writer-wins per task, so a duplicate can only offer the result of the
        same task run from the same state. (Lingering writes are committed with the lease check.)

        `latest`, the root checkpoint tuple the caller read from thread `latest_of` to find
        `expected_head` (None: the thread had none), answers the first unpinned root read of that
        thread (LangGraph's own load) without asking DynamoDB again.

        `linger_seconds` groups the writes: puts and put_writes wait in memory and one fenced
        transaction commits them (head compare-and-set, lease check and every item, all or
        nothing) once the oldest has waited that long, once a transaction would be full, before
        any read, and when the caller calls `commit()`, which it must before it reports success.
        Every checkpoint is still written; a crash loses what was not committed, which the next
        invocation recomputes from the last commit. None: each put commits on its own. With
        `linger_puts` False only writes linger: each put commits at once, with the writes before it.

        `rider`, a TransactWriteItems action (an Update of the run, say), is written by the first
        commit, in its transaction: it costs no request of its own. Its condition failing stops
        the run as a lost lease does.
        """
        clone = copy.copy(self)
        clone._fence = _Fence(expected_head, lease, latest, latest_of, linger_seconds, linger_puts, rider)
        return clone

    @property
    def expected_head(self) -> str | None:
        return self._fence.expected_head if self._fence else None

    def head(self, thread_id: str, checkpoint_ns: str = "") -> str | None:
        key = _key(thread_id, f"H#{checkpoint_ns}")
        item = self.ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item") or {}
        # No `head` attribute: no head. (moto applies a transaction's update in steps, so a read
        # racing a commit can see the item before its attribute; DynamoDB never shows that.)
        return item.get("head", {}).get("S")

    # --- reads ---------------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        self.commit()  # a read sees this saver's own writes
        thread_id, ns = _thread_ns(config)
        checkpoint_id = get_checkpoint_id(config)
        fence = self._fence
        if fence is not None and fence.latest_of is not None:
            # One-shot: only the first read may use it.
            primed, latest = self._primed(config), fence.latest
            fence.latest = fence.latest_of = None
            if primed:
                return latest
        prefix = f"C#{ns}#{checkpoint_id or ''}"
        # Small pages: the newest checkpoint comes right after its own, usually few, pending
        # writes, and every item of a page carries a (possibly large) blob.
        items = self._query(thread_id, "begins_with(sk, :p)", {":p": _s(prefix)}, page=4)
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
        cond, values = _range(ns, checkpoint_id, before_id)
        threads = [config["configurable"]["thread_id"]] if config else self._thread_ids()

        def found() -> Iterator[CheckpointTuple]:
            for thread_id in threads:
                items = self._query(thread_id, cond, values, page=64)
                yield from self._tuples(thread_id, items, ns, checkpoint_id, before_id, filter)

        yield from islice(found(), None if limit is None else max(limit, 0))

    def _tuples(
        self,
        thread_id: str,
        items: Iterable[dict],
        ns: str | None,
        checkpoint_id: str | None,
        before_id: str | None = None,
        filter: dict[str, Any] | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints of a newest-first item stream, each with the writes just before it."""
        writes: list[dict[str, Any]] = []
        for item in items:
            if "task_id" in item:
                writes.append(item)
                continue
            item_ns, item_id = where = _where(item)
            mine = [w for w in writes if _where(w) == where]
            writes = []
            if (ns is not None and item_ns != ns) or (checkpoint_id and item_id != checkpoint_id):
                continue
            if before_id and item_id >= before_id:
                continue
            metadata = self.serde.loads_typed((item["metadata_type"]["S"], item["metadata"]["B"]))
            if filter and any(metadata.get(k) != v for k, v in filter.items()):
                continue
            mine.sort(key=lambda w: writes_sort_key(w["task_path"]["S"], w["task_id"]["S"], int(w["idx"]["N"])))
            parent = item.get("parent_checkpoint_id", {}).get("S")
            yield CheckpointTuple(
                config=_config(thread_id, item_ns, item_id),
                checkpoint=self._load(item),
                metadata=metadata,
                parent_config=_config(thread_id, item_ns, parent) if parent else None,
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
        thread_id, ns = _thread_ns(config)
        checkpoint_id, parent_id = checkpoint["id"], config["configurable"].get("checkpoint_id")
        metadata = get_checkpoint_metadata(config, metadata)
        metadata_type, metadata_bytes = self.serde.dumps_typed(metadata)
        payload, s3_key = self._dump(checkpoint, thread_id, ns, checkpoint_id, "checkpoint")
        item = {
            **_key(thread_id, f"C#{ns}#{checkpoint_id}"),
            **_ids(ns, checkpoint_id),
            "metadata_type": _s(metadata_type),
            "metadata": {"B": metadata_bytes},
            **payload,
        }
        if parent_id:
            item["parent_checkpoint_id"] = _s(parent_id)
        if isinstance(metadata.get("run_id"), str):  # top-level, so delete_for_runs can filter on it
            item["run_id"] = _s(metadata["run_id"])
        if self._fence is None:
            # One transaction, so no crash leaves a checkpoint that the head doesn't point at.
            head = {**_key(thread_id, f"H#{ns}"), "head": _s(checkpoint_id)}
            puts = [{"Put": {"TableName": self.table, "Item": i}} for i in (item, head)]
            self.ddb.transact_write_items(TransactItems=puts)
        else:
            self._fence.latest = self._fence.latest_of = None  # a put makes the primed head stale
            size = len(metadata_bytes) + len(payload.get("data", {}).get("B", b""))
            group = _Group([item], [True], {ns: checkpoint_id}, size, [s3_key] if s3_key else [])
            self._enqueue(self._fence, group)
        return _config(thread_id, ns, checkpoint_id)

    def commit(self) -> None:
        """Write every pending put and write of a batched fence (nothing to do otherwise).
        Raises HeadConflict, and drops what was pending, if the head moved or the lease is gone;
        also raises what a background commit met since the last call."""
        fence = self._fence
        if fence is None:
            return
        with fence.lock:
            if fence.timer is not None:
                fence.timer.cancel()
                fence.timer = None
            if fence.error is not None:
                error, fence.error = fence.error, None
                raise error
            while fence.pending:
                self._commit_first(fence)

    def pending_channels(self) -> set[str]:
        """The channels of the writes a batched fence holds uncommitted."""
        if self._fence is None:
            return set()
        with self._fence.lock:
            return {item["channel"]["S"] for g in self._fence.pending for item in g.items if "channel" in item}

    def abandon(self) -> None:
        """Forget what is pending: the invocation is ending without committing it."""
        if self._fence is not None:
            with self._fence.lock:
                if self._fence.timer is not None:
                    self._fence.timer.cancel()
                    self._fence.timer = None
                self._fence.pending.clear()

    def _enqueue(self, fence: _Fence, group: _Group) -> None:
        with fence.lock:
            if fence.error is not None:
                self.commit()  # raises what the background commit met: the run stops here
            fence.pending.append(group)
            full = sum(g.size for g in fence.pending) > _TX_BYTES or _actions(fence) > _TX_ACTIONS
            if fence.linger_seconds is None or (group.heads and not fence.linger_puts) or full:
                self.commit()
            elif fence.timer is None:
                # Nothing waits longer than linger_seconds, however long the node that runs next.
                fence.timer = threading.Timer(fence.linger_seconds, self._commit_in_background)
                fence.timer.daemon = True
                fence.timer.start()

    def _commit_in_background(self) -> None:
        try:
            self.commit()
        except Exception as exc:  # the run's next put or commit raises it
            assert self._fence is not None
            self._fence.error = exc

    def _commit_first(self, fence: _Fence) -> None:
        """Commit the longest run of pending groups that fits one transaction, then drop them."""
        count, size = 1, fence.pending[0].size
        while count < len(fence.pending):
            nxt = fence.pending[count]
            if size + nxt.size > _TX_BYTES or _actions(fence, count + 1) > _TX_ACTIONS:
                break
            count, size = count + 1, size + nxt.size
        groups = fence.pending[:count]
        if _actions(fence, count) > _TX_ACTIONS:  # one task's writes alone fill a transaction
            self._put_each(groups[0])
            del fence.pending[:1]
            return
        thread_id = groups[0].items[0]["pk"]["S"]
        heads: dict[str, str] = {}
        puts: dict[str, tuple[dict[str, Any], bool]] = {}  # by sort key: one action per item
        for group in groups:
            heads.update(group.heads)
            for item, conditional in zip(group.items, group.conditional):
                # The same special write twice: the later wins. (An object it had spilled to is
                # left for delete_thread's sweep: a transaction can't return the old item.)
                if not (conditional and item["sk"]["S"] in puts):
                    puts[item["sk"]["S"]] = item, conditional
        while True:
            ops, kinds = self._commit_ops(fence, thread_id, heads, puts)
            try:
                # botocore fills in ClientRequestToken, so its own retry of a commit whose response
                # was lost is answered idempotently, not refused by the head that commit moved.
                self.ddb.transact_write_items(TransactItems=ops)
                break
            except ClientError as exc:
                failed = _failed_conditions(exc, kinds)
                if failed is None:
                    raise
                if all(kind == "write" for kind, _ in failed):
                    # A regular write that is already stored: the first writer wins, as put_writes.
                    for _, sk in failed:
                        puts.pop(sk)
                    continue
                # Spill keys are never reused: nothing else can reference these objects.
                self._delete_objects([k for g in fence.pending for k in g.s3_keys])
                fence.pending.clear()
                reason = "lease" if any(kind == "lease" for kind, _ in failed) else "head"
                raise HeadConflict(reason, thread_id, fence.expected_head) from exc
        del fence.pending[:count]
        fence.riders.clear()
        if "" in heads:
            fence.expected_head = heads[""]

    def _commit_ops(
        self, fence: _Fence, thread_id: str, heads: dict[str, str], puts: dict[str, tuple[dict[str, Any], bool]]
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """The transaction's actions, and what each one is: (lease | checkpoint | write | head, sk)."""
        ops: list[dict[str, Any]] = []
        kinds: list[tuple[str, str]] = []
        if fence.lease is not None:
            ops.append(fence.lease._check())
            kinds.append(("lease", ""))
        for rider in fence.riders:
            ops.append({"Update": rider})
            kinds.append(("lease", ""))
        for sk, (item, conditional) in puts.items():
            cond = {"ConditionExpression": "attribute_not_exists(pk)"} if conditional else {}
            ops.append({"Put": {"TableName": self.table, "Item": item, **cond}})
            kinds.append(("write" if "task_id" in item else "checkpoint", sk))
        for ns, head in heads.items():
            if ns == "":
                expected = fence.expected_head
                values = {":new": _s(head), **({":expected": _s(expected)} if expected is not None else {})}
                cas = {
                    "TableName": self.table,
                    "Key": _key(thread_id, "H#"),
                    "UpdateExpression": "SET #h = :new",
                    "ConditionExpression": "attribute_not_exists(#h)" if expected is None else "#h = :expected",
                    "ExpressionAttributeNames": {"#h": "head"},
                    "ExpressionAttributeValues": values,
                }
                ops.append({"Update": cas})
            else:  # subgraph namespaces: fenced by the lease only
                head_item = {**_key(thread_id, f"H#{ns}"), "head": _s(head)}
                ops.append({"Put": {"TableName": self.table, "Item": head_item}})
            kinds.append(("head", f"H#{ns}"))
        return ops, kinds

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        thread_id, ns = _thread_ns(config)
        checkpoint_id = config["configurable"]["checkpoint_id"]
        group = _Group([], [], {}, 0, [])
        for idx, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, idx)
            name = f"writes/{quote(task_id, safe='')}/{idx}"
            payload, s3_key = self._dump(value, thread_id, ns, checkpoint_id, name)
            group.items.append(
                {
                    **_key(thread_id, f"C#{ns}#{checkpoint_id}#W#{task_id}#{idx:010d}"),
                    **_ids(ns, checkpoint_id),
                    "task_id": _s(task_id),
                    "task_path": _s(task_path),
                    "channel": _s(channel),
                    "idx": {"N": str(idx)},
                    **payload,
                }
            )
            # Special channels (error, interrupt, ...) keep the latest value; a regular write is
            # first-writer-wins, so a duplicated task can't replace a result already stored.
            group.conditional.append(idx >= 0)
            group.size += len(payload.get("data", {}).get("B", b""))
            group.s3_keys.extend([s3_key] if s3_key else [])
        if self._fence is not None and self._fence.linger_seconds is not None:
            self._enqueue(self._fence, group)
        else:
            self._put_each(group)

    def _put_each(self, group: _Group) -> None:
        for item, conditional in zip(group.items, group.conditional):
            cond = {"ConditionExpression": "attribute_not_exists(pk)"} if conditional else {}
            try:
                resp = self.ddb.put_item(TableName=self.table, Item=item, ReturnValues="ALL_OLD", **cond)
                garbage = resp.get("Attributes", {})
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise
                garbage = item
            if "s3_key" in garbage:
                self._delete_objects([garbage["s3_key"]["S"]])

    # --- deletes and copies --------------------------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        self._delete_items(self._query(thread_id, projection=_KEYS))
        # Sweep the whole prefix: it also catches objects orphaned by a crash in the middle of a put.
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=_s3_prefix(thread_id)):
            self._delete_objects([obj["Key"] for obj in page.get("Contents", [])])

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        run_ids = list(dict.fromkeys(run_ids))
        touched: set[tuple[str, str]] = set()
        for i in range(0, len(run_ids), _IN_MAX):
            values = {f":r{j}": _s(r) for j, r in enumerate(run_ids[i : i + _IN_MAX])}
            # The table has no index on run_id, so this scans: acceptable on an administrative path.
            for item in self._scan(
                FilterExpression=f"#r IN ({', '.join(values)})",
                ExpressionAttributeNames={"#r": "run_id"},
                ExpressionAttributeValues=values,
                ProjectionExpression="pk, checkpoint_ns, checkpoint_id",
            ):
                thread_id, (ns, cid) = item["pk"]["S"], _where(item)
                self._delete_checkpoint_items(thread_id, ns, cid)
                touched.add((thread_id, ns))
        for thread_id, ns in touched:
            self._repair_head(thread_id, ns)

    def delete_checkpoint(self, thread_id: str, checkpoint_id: str, checkpoint_ns: str = "") -> None:
        """Delete one checkpoint and its pending writes; a head that named it names the newest survivor."""
        self._delete_checkpoint_items(thread_id, checkpoint_ns, checkpoint_id)
        self._repair_head(thread_id, checkpoint_ns)

    def _delete_checkpoint_items(self, thread_id: str, ns: str, checkpoint_id: str) -> None:
        mine = {":p": _s(f"C#{ns}#{checkpoint_id}")}  # the checkpoint and its writes
        self._delete_items(self._query(thread_id, "begins_with(sk, :p)", mine, projection=_KEYS))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        src, dst = _s3_prefix(source_thread_id), _s3_prefix(target_thread_id)

        def copies() -> Iterator[dict[str, Any]]:
            for item in self._query(source_thread_id):  # heads included
                item = {**item, "pk": _s(target_thread_id)}
                if "s3_key" in item:  # an object of its own: deleting either thread spares the other
                    source = {"Bucket": self.bucket, "Key": item["s3_key"]["S"]}
                    item["s3_key"] = _s(dst + source["Key"].removeprefix(src))
                    self.s3.copy_object(Bucket=self.bucket, Key=item["s3_key"]["S"], CopySource=source)
                yield {"PutRequest": {"Item": item}}

        self._batch_write(copies())

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}")
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
                continue
            items = list(self._query(thread_id, "begins_with(sk, :p)", {":p": _s("C#")}, projection=_KEYS))
            latest: dict[str, str] = {}
            for ns, cid in (_where(i) for i in items if "task_id" not in i):
                latest[ns] = max(latest.get(ns, ""), cid)
            self._delete_items(i for i in items if _where(i) not in latest.items())
            for ns in latest:
                self._repair_head(thread_id, ns)

    def _repair_head(self, thread_id: str, ns: str) -> None:
        """Point a head whose checkpoint was deleted at the newest survivor, or drop it. Conditional
        on the head being unchanged, so it never undoes a put that raced with the deletion."""
        head = self.head(thread_id, ns)
        if head is None:
            return
        key = _key(thread_id, f"C#{ns}#{head}")
        found = self.ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True, ProjectionExpression="pk")
        if "Item" in found:
            return
        items = self._query(thread_id, "begins_with(sk, :p)", {":p": _s(f"C#{ns}#")}, page=16, projection=_KEYS)
        newest = next((i["checkpoint_id"]["S"] for i in items if "task_id" not in i), None)
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": _key(thread_id, f"H#{ns}"),
            "ConditionExpression": "#h = :old",
            "ExpressionAttributeNames": {"#h": "head"},
            "ExpressionAttributeValues": {":old": _s(head)},
        }
        try:
            if newest is None:
                self.ddb.delete_item(**kwargs)
            else:
                kwargs["ExpressionAttributeValues"][":new"] = _s(newest)
                self.ddb.update_item(UpdateExpression="SET #h = :new", **kwargs)
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise

    # --- async twins ---------------------------------------------------------------------------
    # boto3 is synchronous: a call that reaches AWS runs in a worker thread, so the engine loop
    # keeps driving the run's other nodes. What a fenced saver answers from memory (the primed
    # first read, a put or write that lingers for the group commit) runs inline: in batched mode
    # that is every call of a superstep, and a thread hop each would cost more than the call.

    async def _off_loop(self, call: Any, *args: Any) -> Any:
        """`call(*args)` in a worker thread; a fenced saver keeps track of it until settle()."""
        future = _IO.submit(call, *args)
        fence = self._fence
        if fence is not None:
            with fence.lock:
                fence.inflight.add(future)
            future.add_done_callback(fence.inflight.discard)
        return await asyncio.wrap_future(future)

    def holds(self, checkpoint_id: str) -> bool:
        """A fenced saver has committed, or holds for its group commit, this root checkpoint."""
        fence = self._fence
        if fence is None:
            return False
        with fence.lock:
            return fence.expected_head == checkpoint_id or any(g.heads.get("") == checkpoint_id for g in fence.pending)

    def settle(self) -> None:
        """Wait for the async twins' calls still running (the graph may have stopped without
        awaiting them: astream_events runs it in a task of its own); raise what one met."""
        fence = self._fence
        if fence is None:
            return
        with fence.lock:
            running = list(fence.inflight)
        for future in running:
            if not future.cancelled():
                future.result()

    def _primed(self, config: RunnableConfig) -> bool:
        """`config` asks for what the fence was primed with: its thread's newest root checkpoint."""
        fence = self._fence
        thread_id, ns = _thread_ns(config)
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
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        # In batches, so a long history streams instead of loading whole before the first yield.
        found = self.list(config, filter=filter, before=before, limit=limit)
        while batch := await asyncio.to_thread(lambda: list(islice(found, 16))):
            for tup in batch:
                yield tup

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        # Inline when it lingers; it may still commit a full transaction or spill a large value
        # to S3 on the loop, which is rare and no slower than the hop it saves elsewhere.
        if self._lingers(put=True):
            return self.put(config, checkpoint, metadata, new_versions)
        return await self._off_loop(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        if self._lingers(put=False):
            return self.put_writes(config, writes, task_id, task_path)
        await self._off_loop(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

    # --- storage helpers -----------------------------------------------------------------------

    def _dump(
        self, value: Any, thread_id: str, ns: str, checkpoint_id: str, name: str
    ) -> tuple[dict[str, Any], str | None]:
        type_, data = self.serde.dumps_typed(value)
        if len(data) <= self.spill_threshold_bytes:
            return {"type": _s(type_), "data": {"B": data}}, None
        # A fresh key per attempt: no object is ever overwritten or shared, so whoever loses a
        # conditional write may delete its own object without asking who else uses it.
        key = f"{_s3_prefix(thread_id)}ns={quote(ns, safe='')}/{checkpoint_id}/{name}-{uuid.uuid4().hex}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)  # before the item: no dangling key
        return {"type": _s(type_), "s3_key": _s(key)}, key

    def _load(self, item: dict[str, Any]) -> Any:
        if "data" in item:
            data = item["data"]["B"]
        else:
            data = self.s3.get_object(Bucket=self.bucket, Key=item["s3_key"]["S"])["Body"].read()
        return self.serde.loads_typed((item["type"]["S"], data))

    def _query(
        self, thread_id: str, cond: str = "", values: dict | None = None, *, page: int = 0, projection: str = ""
    ) -> Iterator[dict[str, Any]]:
        """A thread's items, newest first, fetched page by page as the caller consumes them."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "ScanIndexForward": False,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk" + (f" AND {cond}" if cond else ""),
            "ExpressionAttributeValues": {":pk": _s(thread_id), **(values or {})},
            **({"Limit": page} if page else {}),
            **({"ProjectionExpression": projection} if projection else {}),
        }
        return self._paginate(self.ddb.query, kwargs)

    def _scan(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self._paginate(self.ddb.scan, {"TableName": self.table, "ConsistentRead": True, **kwargs})

    @staticmethod
    def _paginate(call: Any, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            resp = call(**kwargs)
            yield from resp.get("Items", [])
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def _thread_ids(self) -> list[str]:
        # Every namespace with a checkpoint has a head, so head items enumerate the threads.
        heads = self._scan(
            FilterExpression="begins_with(sk, :h)",
            ExpressionAttributeValues={":h": _s("H#")},
            ProjectionExpression="pk",
        )
        return list(dict.fromkeys(item["pk"]["S"] for item in heads))

    def _delete_items(self, items: Iterable[dict[str, Any]]) -> None:
        # Items before their objects: a crash in between orphans objects, but never leaves an item
        # pointing at a missing one.
        items = list(items)
        self._batch_write({"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in items)
        self._delete_objects([i["s3_key"]["S"] for i in items if "s3_key" in i])

    def _batch_write(self, requests: Iterable[dict[str, Any]]) -> None:
        requests = iter(requests)
        while chunk := list(islice(requests, _BATCH)):
            pending: dict[str, Any] = {self.table: chunk}
            for attempt in range(10):
                pending = self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break
                # Unprocessed items are DynamoDB shedding load, not failing: back off, resend those.
                time.sleep(min(0.05 * 2**attempt, 2.0))
            else:
                raise RuntimeError(f"BatchWriteItem still left items unprocessed after retries: {pending}")

    def _delete_objects(self, keys: Sequence[str]) -> None:
        for i in range(0, len(keys), _S3_BATCH):
            objects = [{"Key": k} for k in keys[i : i + _S3_BATCH]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _key(thread_id: str, sk: str) -> dict[str, Any]:
    return {"pk": _s(thread_id), "sk": _s(sk)}


def _ids(ns: str, checkpoint_id: str) -> dict[str, Any]:
    return {"checkpoint_ns": _s(ns), "checkpoint_id": _s(checkpoint_id)}


def _where(item: dict[str, Any]) -> tuple[str, str]:
    return item["checkpoint_ns"]["S"], item["checkpoint_id"]["S"]


def _s3_prefix(thread_id: str) -> str:
    return f"checkpoints/{quote(thread_id, safe='')}/"


def _thread_ns(config: RunnableConfig) -> tuple[str, str]:
    return config["configurable"]["thread_id"], config["configurable"].get("checkpoint_ns", "")


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}


def _range(ns: str | None, checkpoint_id: str | None, before_id: str | None) -> tuple[str, dict[str, Any]]:
    """The narrowest key condition for a listing; _tuples applies the exact filters."""
    if ns is None:
        return "begins_with(sk, :p)", {":p": _s("C#")}
    if before_id and not checkpoint_id:  # ends at `before` itself: its writes and anything newer are out
        return "sk BETWEEN :lo AND :hi", {":lo": _s(f"C#{ns}#"), ":hi": _s(f"C#{ns}#{before_id}")}
    return "begins_with(sk, :p)", {":p": _s(f"C#{ns}#{checkpoint_id or ''}")}


def _actions(fence: _Fence, count: int | None = None) -> int:
    """TransactWriteItems actions that committing the first `count` pending groups (all: None)
    takes: items, heads, the lease and the riders."""
    groups = fence.pending[:count]
    sort_keys = {item["sk"]["S"] for g in groups for item in g.items}
    return len(sort_keys) + len({ns for g in groups for ns in g.heads}) + 1 + len(fence.riders)


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _failed_conditions(exc: ClientError, kinds: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """The actions whose condition cancelled a transaction, as `kinds` names them. None for any
    other failure (throttling, a TransactionConflict with a concurrent writer): retried elsewhere."""
    if _code(exc) != "TransactionCanceledException":
        return None
    codes = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
    failed = [kind for kind, code in zip(kinds, codes) if code == "ConditionalCheckFailed"]
    return failed or None
