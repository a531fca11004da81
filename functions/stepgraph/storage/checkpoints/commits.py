"""How checkpoints and writes reach the table. A fenced saver commits them behind a compare-and-set
on the thread's head and a lease check, grouped into transactions; a plain saver writes each at once."""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError
from langgraph.checkpoint.base import CheckpointTuple

from stepgraph.storage.checkpoints import keys
from stepgraph.storage.checkpoints.spill import Spill
from stepgraph.storage.dynamo import Item, cancellation_reasons, is_conditional_failure, s
from stepgraph.storage.errors import HeadConflict
from stepgraph.vocabulary import AwsError

__all__ = ["Fence", "FencedCommits", "Group", "LeaseCondition", "put_with_head", "write_each"]

logger = logging.getLogger(__name__)

# TransactWriteItems takes at most 100 actions and 4 MB; a commit stays below both.
_TX_ACTIONS = 100
_TX_BYTES = 3_500_000

# What a transaction action is, to tell which condition cancelled it: (kind, sort key).
_Kind = tuple[Literal["lease", "checkpoint", "write", "head"], str]


@dataclass(frozen=True)
class LeaseCondition:
    """An item of another table that must still match `expression` for a fenced commit to succeed."""

    table: str
    key: Item
    expression: str
    values: Item = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def action(self) -> Item:
        """The ConditionCheck action of a transaction."""
        check = {"TableName": self.table, "Key": self.key, "ConditionExpression": self.expression}
        optional = {"ExpressionAttributeValues": self.values, "ExpressionAttributeNames": self.names}
        return {"ConditionCheck": {**check, **{k: v for k, v in optional.items() if v}}}


@dataclass(frozen=True)
class Fence:
    """What a fenced saver's commits must still find true, and how it groups them.

    Of two invocations that run one superstep from one head, exactly one commit succeeds; the
    other raises HeadConflict. Subgraph namespaces are fenced by the lease only: their heads
    aren't known when the run starts.
    """

    expected_head: str | None
    """The root head the invocation observed when it loaded the thread (None: no checkpoint yet),
    not the parent of what it puts: a run resuming from an older checkpoint (a fork) must still
    lose to anything that moved the head since it looked. Each commit that moves the head
    advances it, so a run commits successive checkpoints."""

    lease: LeaseCondition | None = None
    """Must hold for every commit; failing raises HeadConflict("lease")."""

    rider: Item | None = None
    """A TransactWriteItems Update (of the run, say) written inside the first commit's transaction,
    so it costs no request of its own; its condition failing stops the run as a lost lease does."""

    linger_seconds: float | None = None
    """Group commit: puts and writes wait in memory, and one transaction (head compare-and-set,
    lease check and every item, all or nothing) commits them once the oldest has waited this long,
    a transaction would be full, a read comes, or the caller calls `commit()`, which it must before
    it reports success. A crash loses what was not committed; the next invocation recomputes it.
    None: each put commits on its own, and each write is stored at once, outside the fence."""

    linger_puts: bool = True
    """False: only writes linger; each put commits at once, with the writes before it."""

    latest: CheckpointTuple | None = None
    """The root checkpoint tuple the caller read from thread `latest_of` to find `expected_head`
    (None: the thread had none). It answers the first unpinned root read of that thread
    (LangGraph's own load) without asking DynamoDB again."""

    latest_of: str | None = None


@dataclass
class Group:
    """What one put or put_writes call stores: committed together, never split across commits."""

    items: list[Item]
    conditional: list[bool]  # per item: only if absent (first writer wins)
    heads: dict[str, str]  # namespace → the checkpoint id its head moves to
    size: int
    s3_keys: list[str]


def put_with_head(ddb: Any, table: str, item: Item) -> None:
    """A plain saver's put: the checkpoint item and its head in one transaction, so no crash leaves
    a checkpoint that the head doesn't point at. Unconditional: the last writer wins."""
    ns, checkpoint_id = keys.where(item)
    head = {**keys.key(item["pk"]["S"], keys.head_sk(ns)), "head": s(checkpoint_id)}
    ddb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": i}} for i in (item, head)])


def write_each(ddb: Any, table: str, spill: Spill, group: Group) -> None:
    """Store a group's items one request each, outside any transaction. The object of whatever
    loses is deleted: the item's own if its condition fails (a write already stored), else the
    replaced item's."""
    for item, conditional in zip(group.items, group.conditional):
        cond = {"ConditionExpression": "attribute_not_exists(pk)"} if conditional else {}
        try:
            resp = ddb.put_item(TableName=table, Item=item, ReturnValues="ALL_OLD", **cond)
            garbage = resp.get("Attributes", {})
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise
            garbage = item
        spill.delete([garbage[name]["S"] for name in keys.SPILLED if name in garbage])


class FencedCommits:
    """A fenced saver's state: its expected head, what waits for the group commit, the linger
    timer, an error the background commit met, and the calls still running for the async twins.

    Shared by reference: LangGraph clones its checkpointer (with_allowlist), and every clone must
    see the head advance, or the run's second put would compare against a stale head.
    """

    def __init__(self, fence: Fence, ddb: Any, table: str, spill: Spill):
        self.ddb, self.table, self.spill = ddb, table, spill
        self.expected_head, self.lease, self.lock = fence.expected_head, fence.lease, threading.RLock()
        # One-shot: the saver's first read may use it, and a put makes it stale.
        self.latest, self.latest_of = fence.latest, fence.latest_of
        self.linger_seconds, self.linger_puts = fence.linger_seconds, fence.linger_puts
        self.pending: list[Group] = []
        self.timer: threading.Timer | None = None  # commits what is pending once it is due
        self.error: BaseException | None = None  # what that background commit met
        self.riders: list[Item] = [fence.rider] if fence.rider else []
        # Calls that reach AWS from the async twins, in worker threads: one whose awaiting task
        # was cancelled (the graph stopped under it) still runs to its end; settle() waits for it.
        self.inflight: set[concurrent.futures.Future[Any]] = set()

    def enqueue(self, group: Group) -> None:
        """Hold a group for the next commit, or commit now: no linger, a put that must not linger,
        or a transaction that would be full."""
        with self.lock:
            if self.error is not None:
                self.spill.delete(group.s3_keys)  # never to be stored: its objects go now
                self.commit()  # raises what the background commit met: the run stops here
            self.pending.append(group)
            full = sum(g.size for g in self.pending) > _TX_BYTES or self._actions() > _TX_ACTIONS
            if self.linger_seconds is None or (group.heads and not self.linger_puts) or full:
                self.commit()
            elif self.timer is None:
                # Nothing waits longer than linger_seconds, however long the node that runs next.
                # In the run's context, as its own commits are.
                self.timer = threading.Timer(
                    self.linger_seconds, contextvars.copy_context().run, args=(self._commit_in_background,)
                )
                self.timer.daemon = True
                self.timer.start()

    def commit(self) -> None:
        """Write every pending group. Raises HeadConflict, and drops what was pending, if the head
        moved or the lease is gone; also raises what a background commit met since the last call."""
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            while self.pending:
                self._commit_first()

    def abandon(self) -> None:
        """Forget what is pending: the invocation is ending without committing it. The objects its
        values spilled to go too (their keys are never reused: nothing else can name them)."""
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            garbage = [k for g in self.pending for k in g.s3_keys]
            self.pending.clear()
        self.spill.delete(garbage)

    def pending_channels(self) -> set[str]:
        """The channels of the writes held uncommitted."""
        with self.lock:
            return {item["channel"]["S"] for g in self.pending for item in g.items if "channel" in item}

    def holds(self, checkpoint_id: str) -> bool:
        """This root checkpoint is committed (the head) or held for the group commit."""
        with self.lock:
            return self.expected_head == checkpoint_id or any(g.heads.get("") == checkpoint_id for g in self.pending)

    def settle(self) -> None:
        """Wait for the async twins' calls still running; raise what one met."""
        with self.lock:
            running = list(self.inflight)
        for future in running:
            if not future.cancelled():
                future.result()

    def _commit_in_background(self) -> None:
        try:
            self.commit()
        except Exception as exc:
            # Not lost: kept for the run's thread, whose next put or commit raises it.
            logger.debug("background group commit failed; the run's next put or commit raises it", exc_info=True)
            self.error = exc

    def _actions(self, count: int | None = None) -> int:
        """TransactWriteItems actions that committing the first `count` pending groups (all: None)
        takes: items, heads, the lease and the riders."""
        groups = self.pending[:count]
        sort_keys = {item["sk"]["S"] for g in groups for item in g.items}
        return len(sort_keys) + len({ns for g in groups for ns in g.heads}) + 1 + len(self.riders)

    def _commit_first(self) -> None:
        """Commit the longest run of pending groups that fits one transaction, then drop them."""
        count, size = 1, self.pending[0].size
        while count < len(self.pending):
            nxt = self.pending[count]
            if size + nxt.size > _TX_BYTES or self._actions(count + 1) > _TX_ACTIONS:
                break
            count, size = count + 1, size + nxt.size
        groups = self.pending[:count]
        if self._actions(count) > _TX_ACTIONS:  # one task's writes alone fill a transaction
            write_each(self.ddb, self.table, self.spill, groups[0])
            del self.pending[:1]
            return
        thread_id = groups[0].items[0]["pk"]["S"]
        heads: dict[str, str] = {}
        puts: dict[str, tuple[Item, bool]] = {}  # by sort key: one action per item
        for group in groups:
            heads.update(group.heads)
            for item, conditional in zip(group.items, group.conditional):
                # The same special write twice: the later wins. (An object it had spilled to is
                # left for delete_thread's sweep: a transaction can't return the old item.)
                if not (conditional and item["sk"]["S"] in puts):
                    puts[item["sk"]["S"]] = item, conditional
        while True:
            ops, kinds = self._transaction(thread_id, heads, puts)
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
                self.spill.delete([k for g in self.pending for k in g.s3_keys])
                self.pending.clear()
                reason: Literal["head", "lease"] = "lease" if any(kind == "lease" for kind, _ in failed) else "head"
                raise HeadConflict(reason, thread_id, self.expected_head) from exc
        del self.pending[:count]
        self.riders.clear()
        if "" in heads:
            self.expected_head = heads[""]

    def _transaction(
        self, thread_id: str, heads: dict[str, str], puts: dict[str, tuple[Item, bool]]
    ) -> tuple[list[Item], list[_Kind]]:
        """The transaction's actions, and what each one is."""
        ops: list[Item] = []
        kinds: list[_Kind] = []
        if self.lease is not None:
            ops.append(self.lease.action())
            kinds.append(("lease", ""))
        for rider in self.riders:
            ops.append({"Update": rider})
            kinds.append(("lease", ""))
        for sk, (item, conditional) in puts.items():
            cond = {"ConditionExpression": "attribute_not_exists(pk)"} if conditional else {}
            ops.append({"Put": {"TableName": self.table, "Item": item, **cond}})
            kinds.append(("write" if "task_id" in item else "checkpoint", sk))
        for ns, head in heads.items():
            if ns == "":
                expected = self.expected_head
                values = {":new": s(head), **({":expected": s(expected)} if expected is not None else {})}
                cas = {
                    "TableName": self.table,
                    "Key": keys.key(thread_id, keys.head_sk("")),
                    "UpdateExpression": "SET #h = :new",
                    "ConditionExpression": "attribute_not_exists(#h)" if expected is None else "#h = :expected",
                    "ExpressionAttributeNames": {"#h": "head"},
                    "ExpressionAttributeValues": values,
                }
                ops.append({"Update": cas})
            else:  # subgraph namespaces: fenced by the lease only
                head_item = {**keys.key(thread_id, keys.head_sk(ns)), "head": s(head)}
                ops.append({"Put": {"TableName": self.table, "Item": head_item}})
            kinds.append(("head", keys.head_sk(ns)))
        return ops, kinds


def _failed_conditions(exc: ClientError, kinds: list[_Kind]) -> list[_Kind] | None:
    """The actions whose condition cancelled a transaction, as `kinds` names them. None for any
    other failure (throttling, a TransactionConflict with a concurrent writer): retried elsewhere."""
    codes = cancellation_reasons(exc)
    if codes is None:
        return None
    failed = [kind for kind, code in zip(kinds, codes) if code == AwsError.CONDITION_FAILED]
    return failed or None
