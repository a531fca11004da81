"""Runs, in the runs table: their documents and the conditional status changes of their lifecycle."""

from __future__ import annotations

import builtins
import zlib
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from stepgraph import serde
from stepgraph.storage.documents import (
    USAGE_PREFIX,
    Document,
    doc_item,
    documents,
    from_item,
    now_iso,
    strip_top,
)
from stepgraph.storage.dynamo import Item, is_conditional_failure, paginate, s, update_if
from stepgraph.storage.errors import Conflict
from stepgraph.vocabulary import INFLIGHT, RunStatus

__all__ = ["INFLIGHT_ATTRIBUTE", "INFLIGHT_INDEX", "PENDING_INDEX_ATTRIBUTES", "RunStore", "inflight_attribute"]

# A pending run's place in the runs table's sparse `pending_due` index (storage/queue.py writes
# them): every transition out of `pending` removes them.
PENDING_INDEX_ATTRIBUTES = ("pending_shard", "pending_due")
# A run in flight (pending or running) carries its shard of the sparse `inflight` index; every
# transition out of flight removes it.
INFLIGHT_INDEX = "inflight"
INFLIGHT_ATTRIBUTE = "inflight_shard"
_INFLIGHT_SHARDS = 8


def _number(amount: float) -> str:
    """A DynamoDB number: fixed-point (no exponent), to the nano-dollar and beyond."""
    return f"{amount:.15f}".rstrip("0").rstrip(".") or "0"


def inflight_attribute(run_id: str) -> Item:
    """The attribute that puts a run in flight in the `inflight` index."""
    return {INFLIGHT_ATTRIBUTE: s(str(zlib.crc32(run_id.encode()) % _INFLIGHT_SHARDS))}


class RunStore:
    """Runs, keyed (thread_id, run_id). Run ids are UUIDv7, so key order is creation order."""

    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table

    def _key(self, thread_id: str, run_id: str) -> Item:
        return {"thread_id": s(thread_id), "run_id": s(run_id)}

    def create(self, doc: Document) -> None:
        item = {
            **doc_item(strip_top(doc), status=doc["status"], execution=doc.get("execution")),
            **self._key(doc["thread_id"], doc["run_id"]),
            **(inflight_attribute(doc["run_id"]) if doc["status"] in INFLIGHT else {}),
        }
        self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(run_id)")

    def get(self, thread_id: str, run_id: str) -> Document | None:
        resp = self.client.get_item(TableName=self.table, Key=self._key(thread_id, run_id), ConsistentRead=True)
        return from_item(resp.get("Item"))

    def list(self, thread_id: str) -> builtins.list[Document]:
        """Newest first."""
        items = paginate(
            self.client.query,
            TableName=self.table,
            KeyConditionExpression="thread_id = :t",
            ExpressionAttributeValues={":t": s(thread_id)},
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        return documents(items)

    def transition(
        self,
        thread_id: str,
        run_id: str,
        *,
        to: str,
        expected: tuple[str, ...],
        patch: dict[str, Any] | None = None,
    ) -> Document:
        """Move a run to status `to` only if its status is one of `expected`; returns the run.

        One conditional UpdateItem: this is what makes a late finish unable to overwrite a
        cancel. Raises Conflict.
        """
        try:
            resp = self.client.update_item(
                **self.transition_action(thread_id, run_id, to=to, expected=expected, patch=patch),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise Conflict(f"run {run_id} is not {expected}") from exc
            raise
        run = from_item(resp["Attributes"])
        assert run is not None  # ALL_NEW of an update that succeeded: the whole item
        return run

    def transition_action(
        self,
        thread_id: str,
        run_id: str,
        *,
        to: str,
        expected: tuple[str, ...],
        patch: dict[str, Any] | None = None,
        execution: str | None = None,
    ) -> Item:
        """`transition` as the arguments of an UpdateItem, or of a transaction's Update action.
        `execution` records the execution that carries the run."""
        names = {"#s": "status"}
        values: Item = {":s": s(to), ":u": s(now_iso()), **{f":e{i}": s(status) for i, status in enumerate(expected)}}
        sets = ["#s = :s", "updated_at = :u"]
        for i, (key, value) in enumerate((patch or {}).items()):
            names[f"#p{i}"] = f"x_{key}"
            values[f":p{i}"] = s(serde.dumps_str(value))
            sets.append(f"#p{i} = :p{i}")
        if execution is not None:
            values[":x"] = s(execution)
            sets.append("execution = :x")
        update = "SET " + ", ".join(sets)
        removed = list(PENDING_INDEX_ATTRIBUTES) if RunStatus.PENDING in expected and to != RunStatus.PENDING else []
        if to not in INFLIGHT:
            removed.append(INFLIGHT_ATTRIBUTE)
        if removed:
            update += " REMOVE " + ", ".join(removed)
        return {
            "TableName": self.table,
            "Key": self._key(thread_id, run_id),
            "UpdateExpression": update,
            "ConditionExpression": "#s IN (" + ", ".join(f":e{i}" for i in range(len(expected))) + ")",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def add_usage(self, thread_id: str, run_id: str, usage: Mapping[str, float]) -> bool:
        """Add one invocation's AWS usage to the run's totals: one atomic ADD, so concurrent
        invocations (a step and a cancel's finish) never lose each other's. False if the run is
        gone (its thread was deleted meanwhile)."""
        amounts = {key: amount for key, amount in usage.items() if amount}
        if not amounts:
            return True
        names = {f"#u{i}": USAGE_PREFIX + key for i, key in enumerate(amounts)}
        values = {f":u{i}": {"N": _number(amount)} for i, amount in enumerate(amounts.values())}
        return update_if(
            self.client,
            TableName=self.table,
            Key=self._key(thread_id, run_id),
            UpdateExpression="ADD " + ", ".join(f"#u{i} :u{i}" for i in range(len(amounts))),
            ConditionExpression="attribute_exists(run_id)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def record_execution(self, thread_id: str, run_id: str, execution: str) -> bool:
        """Record the execution that carries a running run, unless another one is recorded (a
        hand-over moved the run on). False if the run is not running or belongs elsewhere."""
        return update_if(
            self.client,
            TableName=self.table,
            Key=self._key(thread_id, run_id),
            UpdateExpression="SET execution = :x",
            ConditionExpression="#s = :running AND (attribute_not_exists(execution) OR execution = :x)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":x": s(execution), ":running": s(RunStatus.RUNNING)},
        )

    def hand_over(self, thread_id: str, run_id: str, *, carrier: str, handover: dict[str, Any]) -> bool:
        """Move a running run from the execution `carrier` to `handover["execution"]`, recording
        the hand-over (what the new execution starts with). False if the run is not running or
        another execution carries it."""
        return update_if(
            self.client,
            TableName=self.table,
            Key=self._key(thread_id, run_id),
            UpdateExpression="SET execution = :to, x_handover = :h",
            ConditionExpression="#s = :running AND (attribute_not_exists(execution) OR execution = :from)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":to": s(handover["execution"]),
                ":from": s(carrier),
                ":h": s(serde.dumps_str(handover)),
                ":running": s(RunStatus.RUNNING),
            },
        )

    def delete(self, thread_id: str, run_id: str) -> bool:
        resp = self.client.delete_item(TableName=self.table, Key=self._key(thread_id, run_id), ReturnValues="ALL_OLD")
        return "Attributes" in resp

    def delete_thread(self, thread_id: str) -> None:
        for run in self.list(thread_id):
            self.delete(thread_id, run["run_id"])

    def with_status(self, statuses: tuple[str, ...]) -> builtins.list[Document]:
        """Runs of every thread whose status is one of `statuses`, all in flight (pending or
        running): read from the sparse `inflight` index, one Query a shard, never the table."""
        if not set(statuses) <= set(INFLIGHT):
            raise ValueError(f"only runs in flight are indexed, not {statuses}")
        values = {f":s{i}": s(status) for i, status in enumerate(statuses)}
        found: builtins.list[Document] = []
        for shard in range(_INFLIGHT_SHARDS):
            items = paginate(
                self.client.query,
                TableName=self.table,
                IndexName=INFLIGHT_INDEX,
                KeyConditionExpression=f"{INFLIGHT_ATTRIBUTE} = :shard",
                FilterExpression="#s IN (" + ", ".join(values) + ")",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":shard": s(str(shard)), **values},
            )
            found.extend(documents(items))
        return found
