"""A thread's run queue, kept on the thread item: the lease, the pending runs and the last insert.

`active_run_id` is the lease (the one run of the thread that may execute), `pending` a string set
with one entry per pending run, `"<due ms, 13 digits>.<run_id>"`, so the set's sorted order is
admission order, and `tail` the id of the run inserted last. Every move of a run into, through
or out of the queue is one transaction over the run item and the thread item, so the queue and
the runs' statuses never disagree, and conditions on the thread item decide what the API and
dispatch may do: reject's 409, admission, the order of inserts. Reads are consistent (the
thread item), never through an index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from stepgraph.storage.resources import Conflict, _doc_item, _s, _strip_top, now_iso, update_if

__all__ = ["QueueState", "ThreadMissing", "ThreadQueue", "entry_due_ms", "entry_run_id", "queue_entry"]


class ThreadMissing(Exception):
    """The thread item does not exist (never created, or deleted meanwhile)."""


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


def _reasons(exc: ClientError) -> list[str | None]:
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        raise exc
    return [r.get("Code") for r in exc.response.get("CancellationReasons", [])]


def _retryable(codes: list[str | None]) -> bool:
    # A concurrent transaction on the same item (AWS) or a throttled one: the caller tries again.
    return any(c in ("TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded") for c in codes)


class ThreadQueue:
    def __init__(self, client: Any, threads_table: str, runs_table: str):
        self.client, self.threads, self.runs = client, threads_table, runs_table

    def _thread_key(self, thread_id: str) -> dict[str, Any]:
        return {"thread_id": _s(thread_id)}

    def _run_key(self, thread_id: str, run_id: str) -> dict[str, Any]:
        return {"thread_id": _s(thread_id), "run_id": _s(run_id)}

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

    def insert(self, run: dict[str, Any], *, entry: str, tail: str | None, reject: bool) -> None:
        """Put the pending run and add it to the queue, if nobody inserted since `tail` was read
        (and, for reject, if the thread holds no run and queues none). Raises Conflict if not,
        ThreadMissing if the thread is gone."""
        thread_id, run_id = run["thread_id"], run["run_id"]
        item = {**_doc_item(_strip_top(run), status="pending"), **self._run_key(thread_id, run_id)}
        cond = "attribute_exists(thread_id) AND " + ("tail = :tail" if tail else "attribute_not_exists(tail)")
        if reject:
            cond += " AND attribute_not_exists(active_run_id) AND attribute_not_exists(pending)"
        values: dict[str, Any] = {":r": _s(run_id), ":busy": _s("busy"), ":e": {"SS": [entry]}}
        if tail:
            values[":tail"] = _s(tail)
        thread_update = {
            "TableName": self.threads,
            "Key": self._thread_key(thread_id),
            "UpdateExpression": "SET tail = :r, #s = :busy ADD pending :e",
            "ConditionExpression": cond,
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
        }
        put = {"TableName": self.runs, "Item": item, "ConditionExpression": "attribute_not_exists(run_id)"}
        try:
            self.client.transact_write_items(TransactItems=[{"Put": put}, {"Update": thread_update}])
        except ClientError as exc:
            codes = _reasons(exc)
            if codes[1:2] == ["ConditionalCheckFailed"] and self.state(thread_id) is None:
                raise ThreadMissing(thread_id) from exc
            if "ConditionalCheckFailed" in codes or _retryable(codes):
                raise Conflict(f"thread {thread_id} changed before run {run_id} was queued") from exc
            raise

    def admit(self, thread_id: str, run_id: str, entry: str, *, task_token: str | None) -> str:
        """Give the lease to the queued run and mark it running, in one transaction.

        "admitted"; "thread" if the thread changed (held, entry gone, another park): look again;
        "run" if the run is no longer pending although its entry is queued (an orphan entry).
        """
        token_cond = "task_token = :t" if task_token else "attribute_not_exists(task_token)"
        values: dict[str, Any] = {":r": _s(run_id), ":busy": _s("busy"), ":e": {"SS": [entry]}, ":es": _s(entry)}
        if task_token:
            values[":t"] = _s(task_token)
        thread_update = {
            "TableName": self.threads,
            "Key": self._thread_key(thread_id),
            "UpdateExpression": "SET active_run_id = :r, #s = :busy DELETE pending :e REMOVE task_token, parked_run_id",
            "ConditionExpression": f"attribute_not_exists(active_run_id) AND contains(pending, :es) AND {token_cond}",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
        }
        run_update = {
            "TableName": self.runs,
            "Key": self._run_key(thread_id, run_id),
            "UpdateExpression": "SET #s = :running, updated_at = :u",
            "ConditionExpression": "#s = :pending",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":running": _s("running"), ":pending": _s("pending"), ":u": _s(now_iso())},
        }
        try:
            self.client.transact_write_items(TransactItems=[{"Update": thread_update}, {"Update": run_update}])
        except ClientError as exc:
            codes = _reasons(exc)
            if codes[:1] == ["ConditionalCheckFailed"] or _retryable(codes):
                return "thread"
            if codes[1:2] == ["ConditionalCheckFailed"]:
                return "run"
            raise
        return "admitted"

    def withdraw(self, thread_id: str, run_id: str, entry: str) -> bool:
        """A pending run leaves the queue as interrupted (cancel). False if it was not pending."""
        run_update = self._interrupt_run(thread_id, run_id, was="pending")
        thread_update = {
            "TableName": self.threads,
            "Key": self._thread_key(thread_id),
            "UpdateExpression": "DELETE pending :e",
            "ExpressionAttributeValues": {":e": {"SS": [entry]}},
        }
        return self._try([{"Update": run_update}, {"Update": thread_update}])

    def stop(self, thread_id: str, run_id: str, *, status: str, hold: str | None = None) -> bool:
        """A running run ends interrupted and loses the lease in the same write, so from then on
        its fenced checkpoint writes fail. `hold` keeps the thread held under another name (a
        rollback deletes what the run wrote before any other run may start). False if the run
        was not running or did not hold the thread."""
        values: dict[str, Any] = {":r": _s(run_id), ":s": _s(status)}
        expr = "SET #s = :s REMOVE active_run_id"
        if hold:
            expr, values[":hold"] = "SET #s = :s, active_run_id = :hold", _s(hold)
        run_update = self._interrupt_run(thread_id, run_id, was="running")
        thread_update = {
            "TableName": self.threads,
            "Key": self._thread_key(thread_id),
            "UpdateExpression": expr,
            "ConditionExpression": "active_run_id = :r",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
        }
        return self._try([{"Update": run_update}, {"Update": thread_update}])

    def _interrupt_run(self, thread_id: str, run_id: str, *, was: str) -> dict[str, Any]:
        """The transaction item that ends a run `interrupted` if its status is still `was`."""
        return {
            "TableName": self.runs,
            "Key": self._run_key(thread_id, run_id),
            "UpdateExpression": "SET #s = :interrupted, updated_at = :u",
            "ConditionExpression": "#s = :was",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":interrupted": _s("interrupted"), ":was": _s(was), ":u": _s(now_iso())},
        }

    def drop(self, thread_id: str, entry: str) -> None:
        """Remove an entry whose run is gone or no longer pending (idempotent)."""
        self._update_if(
            thread_id, "DELETE pending :e", "attribute_exists(thread_id)", {":e": {"SS": [entry]}}, names=False
        )

    def settle(self, thread_id: str, status: str) -> bool:
        """Set the status of a thread that holds and queues nothing (after a pending run left)."""
        return self._update_if(
            thread_id,
            "SET #s = :s",
            "attribute_exists(thread_id) AND attribute_not_exists(active_run_id) AND attribute_not_exists(pending)",
            {":s": _s(status)},
        )

    def _update_if(self, thread_id: str, expr: str, cond: str, values: dict[str, Any], *, names: bool = True) -> bool:
        kwargs: dict[str, Any] = {"ExpressionAttributeNames": {"#s": "status"}} if names else {}
        return update_if(
            self.client,
            TableName=self.threads,
            Key=self._thread_key(thread_id),
            UpdateExpression=expr,
            ConditionExpression=cond,
            ExpressionAttributeValues=values,
            **kwargs,
        )

    def _try(self, items: list[dict[str, Any]]) -> bool:
        for _ in range(10):
            try:
                self.client.transact_write_items(TransactItems=items)
                return True
            except ClientError as exc:
                codes = _reasons(exc)
                if "ConditionalCheckFailed" in codes:
                    return False
                if not _retryable(codes):
                    raise
        raise RuntimeError("transaction kept conflicting with concurrent writers")
