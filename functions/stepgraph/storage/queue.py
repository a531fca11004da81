"""A thread's run queue, kept on the thread item: the lease, the pending runs and the last insert.

`active_run_id` is the lease (the one run of the thread that may execute), `pending` a string set
with one entry per pending run, `"<due ms, 13 digits>.<run_id>"`, so the set's sorted order is
admission order, and `tail` the id of the run inserted last. Every move of a run into, through
or out of the queue is one transaction over the run item and the thread item, so the queue and
the runs' statuses never disagree, and conditions on the thread item decide what the API and
dispatch may do: reject's 409, admission, the order of inserts. Reads that decide are consistent
(the thread item). One index serves the sweeper only: a pending run carries its due time in the
runs table's sparse `pending_due` index, so runs whose doorbell was lost are found without a scan.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from stepgraph import serde
from stepgraph.storage.documents import Document, doc_item, now_iso, strip_top
from stepgraph.storage.dynamo import Item, contended, paginate, s, transact, update_if
from stepgraph.storage.errors import Conflict, ThreadMissing
from stepgraph.storage.runs import INFLIGHT_ATTRIBUTE, PENDING_INDEX_ATTRIBUTES, inflight_attribute
from stepgraph.vocabulary import AwsError, RunStatus, ThreadStatus

__all__ = ["PENDING_INDEX", "QueueState", "ThreadQueue", "entry_due_ms", "entry_run_id", "queue_entry"]

# The runs table's sparse index of pending runs by due time (template.yaml). Its partition key is
# one of a few shards (by thread), not one value, so no single index partition takes every insert.
PENDING_INDEX = "pending_due"
_PENDING_SHARDS = 8
_INDEXED = ", ".join(PENDING_INDEX_ATTRIBUTES)


def queue_entry(run_id: str, due_ms: int) -> str:
    return f"{due_ms:013d}.{run_id}"


def entry_run_id(entry: str) -> str:
    return entry[14:]


def entry_due_ms(entry: str) -> int:
    return int(entry[:13])


@dataclass(frozen=True)
class QueueState:
    holder: str | None  # active_run_id: the run holding the lease (or a rollback marker)
    pending: tuple[str, ...]  # entries in admission order (earliest due first, then insert order)
    tail: str | None
    task_token: str | None
    parked_run_id: str | None

    def entry_of(self, run_id: str) -> str | None:
        return next((e for e in self.pending if entry_run_id(e) == run_id), None)


class ThreadQueue:
    """The run queue of each thread, moved by transactions over the thread item and the run item."""

    def __init__(self, client: Any, threads_table: str, runs_table: str):
        self.client, self.threads, self.runs = client, threads_table, runs_table

    def _thread_key(self, thread_id: str) -> Item:
        return {"thread_id": s(thread_id)}

    def _run_key(self, thread_id: str, run_id: str) -> Item:
        return {"thread_id": s(thread_id), "run_id": s(run_id)}

    def state(self, thread_id: str) -> QueueState | None:
        item = self.client.get_item(
            TableName=self.threads,
            Key=self._thread_key(thread_id),
            ConsistentRead=True,
            ProjectionExpression="thread_id, active_run_id, pending, tail, task_token, parked_run_id",
        ).get("Item")
        if not item:
            return None

        def text(name: str) -> str | None:
            return item[name]["S"] if name in item else None

        return QueueState(
            holder=text("active_run_id"),
            pending=tuple(sorted(item.get("pending", {}).get("SS", []))),
            tail=text("tail"),
            task_token=text("task_token"),
            parked_run_id=text("parked_run_id"),
        )

    def insert(self, run: Document, *, entry: str, tail: str | None, reject: bool) -> None:
        """Put the pending run and add it to the queue, if nobody inserted since `tail` was read
        (and, for reject, if the thread holds no run and queues none). Raises Conflict if not,
        ThreadMissing if the thread is gone."""
        thread_id, run_id = run["thread_id"], run["run_id"]
        item = {
            **doc_item(strip_top(run), status=RunStatus.PENDING),
            **self._run_key(thread_id, run_id),
            "pending_shard": s(_shard(thread_id)),
            "pending_due": {"N": str(entry_due_ms(entry))},
            **inflight_attribute(run_id),
        }
        cond = "attribute_exists(thread_id) AND " + ("tail = :tail" if tail else "attribute_not_exists(tail)")
        if reject:
            cond += " AND attribute_not_exists(active_run_id) AND attribute_not_exists(pending)"
        values: Item = {":r": s(run_id), ":busy": s(ThreadStatus.BUSY), ":e": {"SS": [entry]}}
        if tail:
            values[":tail"] = s(tail)
        thread_update = self._thread_update(thread_id, "SET tail = :r, #s = :busy ADD pending :e", values, cond)
        put = {"TableName": self.runs, "Item": item, "ConditionExpression": "attribute_not_exists(run_id)"}
        codes = transact(self.client, [{"Put": put}, {"Update": thread_update}])
        if not codes:
            return
        if codes[1:2] == [AwsError.CONDITION_FAILED] and self.state(thread_id) is None:
            raise ThreadMissing(thread_id)
        if AwsError.CONDITION_FAILED in codes or contended(codes):
            raise Conflict(f"thread {thread_id} changed before run {run_id} was queued")
        raise RuntimeError(f"queueing run {run_id} was cancelled: {codes}")

    def admit(
        self, thread_id: str, run_id: str, entry: str, *, task_token: str | None
    ) -> Literal["admitted", "thread", "run"]:
        """Give the lease to the queued run and mark it running, in one transaction.

        "admitted"; "thread" if the thread changed (held, entry gone, another park): look again;
        "run" if the run is no longer pending although its entry is queued (an orphan entry).
        """
        token_cond = "task_token = :t" if task_token else "attribute_not_exists(task_token)"
        values: Item = {":r": s(run_id), ":busy": s(ThreadStatus.BUSY), ":e": {"SS": [entry]}, ":es": s(entry)}
        if task_token:
            values[":t"] = s(task_token)
        thread_update = self._thread_update(
            thread_id,
            "SET active_run_id = :r, #s = :busy DELETE pending :e REMOVE task_token, parked_run_id",
            values,
            f"attribute_not_exists(active_run_id) AND contains(pending, :es) AND {token_cond}",
        )
        now = now_iso()
        run_update = {
            "TableName": self.runs,
            "Key": self._run_key(thread_id, run_id),
            # x_started_at: the run's `started_at` (its webhook's run_started_at)
            "UpdateExpression": f"SET #s = :running, updated_at = :u, x_started_at = :st REMOVE {_INDEXED}",
            "ConditionExpression": "#s = :pending",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":running": s(RunStatus.RUNNING),
                ":pending": s(RunStatus.PENDING),
                ":u": s(now),
                ":st": s(serde.dumps_str(now)),
            },
        }
        codes = transact(self.client, [{"Update": thread_update}, {"Update": run_update}])
        if not codes:
            return "admitted"
        if codes[:1] == [AwsError.CONDITION_FAILED] or contended(codes):
            return "thread"
        if codes[1:2] == [AwsError.CONDITION_FAILED]:
            return "run"
        raise RuntimeError(f"admitting run {run_id} was cancelled: {codes}")

    def withdraw(self, thread_id: str, run_id: str, entry: str) -> bool:
        """A pending run leaves the queue as interrupted (cancel). False if it was not pending."""
        run_update = self._interrupt_run(thread_id, run_id, was=RunStatus.PENDING)
        thread_update = self._thread_update(thread_id, "DELETE pending :e", {":e": {"SS": [entry]}})
        return self._try([{"Update": run_update}, {"Update": thread_update}])

    def stop(self, thread_id: str, run_id: str, *, status: str, hold: str | None = None) -> bool:
        """A running run ends interrupted and loses the lease in the same write, so from then on
        its fenced checkpoint writes fail. `hold` keeps the thread held under another name (a
        rollback deletes what the run wrote before any other run may start). False if the run
        was not running or did not hold the thread."""
        values: Item = {":r": s(run_id), ":s": s(status)}
        expr = "SET #s = :s REMOVE active_run_id"
        if hold:
            expr, values[":hold"] = "SET #s = :s, active_run_id = :hold", s(hold)
        run_update = self._interrupt_run(thread_id, run_id, was=RunStatus.RUNNING)
        thread_update = self._thread_update(thread_id, expr, values, "active_run_id = :r")
        return self._try([{"Update": run_update}, {"Update": thread_update}])

    def _interrupt_run(self, thread_id: str, run_id: str, *, was: RunStatus) -> Item:
        """The transaction item that ends a run `interrupted` if its status is still `was`."""
        leave_index = (
            f" REMOVE {_INDEXED}, {INFLIGHT_ATTRIBUTE}" if was == RunStatus.PENDING else f" REMOVE {INFLIGHT_ATTRIBUTE}"
        )
        return {
            "TableName": self.runs,
            "Key": self._run_key(thread_id, run_id),
            "UpdateExpression": "SET #s = :interrupted, updated_at = :u" + leave_index,
            "ConditionExpression": "#s = :was",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":interrupted": s(RunStatus.INTERRUPTED), ":was": s(was), ":u": s(now_iso())},
        }

    def drop(self, thread_id: str, entry: str) -> None:
        """Remove an entry whose run is gone or no longer pending (idempotent)."""
        self._update_if(thread_id, "DELETE pending :e", "attribute_exists(thread_id)", {":e": {"SS": [entry]}})

    def settle(self, thread_id: str, status: str) -> bool:
        """Set the status of a thread that holds and queues nothing (after a pending run left)."""
        return self._update_if(
            thread_id,
            "SET #s = :s",
            "attribute_exists(thread_id) AND attribute_not_exists(active_run_id) AND attribute_not_exists(pending)",
            {":s": s(status)},
        )

    def overdue(self, due_before_ms: int) -> Iterator[tuple[str, str]]:
        """(thread_id, run_id) of the pending runs due before `due_before_ms`, from the sparse
        index: eventually consistent, so a run may have left the queue since; read the thread."""
        for shard in range(_PENDING_SHARDS):
            for item in paginate(
                self.client.query,
                TableName=self.runs,
                IndexName=PENDING_INDEX,
                KeyConditionExpression="pending_shard = :shard AND pending_due < :before",
                ExpressionAttributeValues={":shard": s(str(shard)), ":before": {"N": str(due_before_ms)}},
            ):
                yield item["thread_id"]["S"], item["run_id"]["S"]

    def _thread_update(self, thread_id: str, expr: str, values: Item, cond: str = "") -> Item:
        """An UpdateItem of the thread item (`#s` in an expression names its status)."""
        update: Item = {
            "TableName": self.threads,
            "Key": self._thread_key(thread_id),
            "UpdateExpression": expr,
            "ExpressionAttributeValues": values,
        }
        if cond:
            update["ConditionExpression"] = cond
        if "#s" in expr + cond:
            update["ExpressionAttributeNames"] = {"#s": "status"}
        return update

    def _update_if(self, thread_id: str, expr: str, cond: str, values: Item) -> bool:
        return update_if(self.client, **self._thread_update(thread_id, expr, values, cond))

    def _try(self, items: list[Item]) -> bool:
        for _ in range(10):
            codes = transact(self.client, items)
            if not codes:
                return True
            if AwsError.CONDITION_FAILED in codes:
                return False
            if not contended(codes):
                raise RuntimeError(f"transaction cancelled: {codes}")
        raise RuntimeError("transaction kept conflicting with concurrent writers")


def _shard(thread_id: str) -> str:
    """The pending index's partition of a thread's runs (stable across processes)."""
    return str(zlib.crc32(thread_id.encode()) % _PENDING_SHARDS)
