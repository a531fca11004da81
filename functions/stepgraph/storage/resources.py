"""Assistants, threads and runs on DynamoDB.

Each item keeps the attributes that conditions need (status, active_run_id, ...) at the top
level and the rest of the resource as one JSON document, so a resource round-trips exactly and
no Decimal conversion leaks into the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from stepgraph import serde

INFLIGHT = ("pending", "running")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


def update_if(client: Any, **update: Any) -> bool:
    """One conditional UpdateItem: False if its condition did not hold."""
    try:
        client.update_item(**update)
    except ClientError as exc:
        if is_conditional_failure(exc):
            return False
        raise
    return True


class Conflict(Exception):
    """A conditional write lost: the resource was not in the expected state."""


# A DynamoDB item holds at most 400 KB. An assistant, thread or run is one JSON document in one
# item, so the document may take this much, leaving the rest for keys and queue attributes.
# Documents are refused, not spilled: they hold what clients send (input, metadata, config),
# and 350 KB of that is far beyond what a run request needs (graph state lives in checkpoints).
MAX_DOCUMENT_BYTES = 350_000


class DocumentTooLarge(Exception):
    """A resource's document does not fit in one item: nothing was written."""

    def __init__(self, size: int):
        super().__init__(
            f"Request too large: it would be stored as a {size}-byte document, over the limit of "
            f"{MAX_DOCUMENT_BYTES} bytes per assistant, thread or run (DynamoDB items hold 400 KB)"
        )
        self.size = size


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _doc_json(doc: dict[str, Any]) -> str:
    text = serde.dumps_str(doc)
    size = len(text.encode())
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(size)
    return text


def check_document_size(doc: dict[str, Any]) -> None:
    """Raise DocumentTooLarge now for a document that could not be written later."""
    _doc_json(doc)


def _doc_item(doc: dict[str, Any], **top: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"doc": _s(_doc_json(doc))}
    for name, value in top.items():
        if value is not None:
            item[name] = _s(value) if isinstance(value, str) else {"N": str(value)}
    return item


def _from_item(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if not item:
        return None
    doc = serde.loads(item["doc"]["S"])
    for name in ("status", "active_run_id", "parked_run_id", "task_token", "updated_at"):
        if name in item:
            doc[name] = item[name]["S"]
    for name, value in item.items():
        # Fields set by conditional updates live beside the document, so a status change is
        # one UpdateItem instead of a read-modify-write of the whole document.
        if name.startswith("x_"):
            doc[name[2:]] = serde.loads(value["S"])
    return doc


def _scan(client: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    while True:
        page = client.scan(ConsistentRead=True, **kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class AssistantStore:
    """Assistants: item sk="A" is the current version, sk="v#<n>" the history."""

    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table

    def put(self, doc: dict[str, Any], *, if_absent: bool = False) -> bool:
        kwargs: dict[str, Any] = {}
        if if_absent:
            kwargs["ConditionExpression"] = "attribute_not_exists(assistant_id)"
        items = [
            {**_doc_item(doc), "assistant_id": _s(doc["assistant_id"]), "sk": _s("A")},
            {**_doc_item(doc), "assistant_id": _s(doc["assistant_id"]), "sk": _s(f"v#{doc['version']:010d}")},
        ]
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self.table, "Item": items[0], **kwargs}},
                    {"Put": {"TableName": self.table, "Item": items[1]}},
                ]
            )
        except ClientError as exc:
            if if_absent and is_conditional_failure(exc):
                return False
            raise
        return True

    def get(self, assistant_id: str) -> dict[str, Any] | None:
        resp = self.client.get_item(
            TableName=self.table,
            Key={"assistant_id": _s(assistant_id), "sk": _s("A")},
            ConsistentRead=True,
        )
        return _from_item(resp.get("Item"))

    def versions(self, assistant_id: str) -> list[dict[str, Any]]:
        resp = self.client.query(
            TableName=self.table,
            KeyConditionExpression="assistant_id = :a AND begins_with(sk, :v)",
            ExpressionAttributeValues={":a": _s(assistant_id), ":v": _s("v#")},
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        return [d for d in map(_from_item, resp.get("Items", [])) if d]

    def all(self) -> list[dict[str, Any]]:
        items = _scan(
            self.client,
            TableName=self.table,
            FilterExpression="sk = :a",
            ExpressionAttributeValues={":a": _s("A")},
        )
        return [d for d in map(_from_item, items) if d]

    def delete(self, assistant_id: str) -> bool:
        resp = self.client.query(
            TableName=self.table,
            KeyConditionExpression="assistant_id = :a",
            ExpressionAttributeValues={":a": _s(assistant_id)},
            ProjectionExpression="assistant_id, sk",
            ConsistentRead=True,
        )
        keys = [{"assistant_id": i["assistant_id"], "sk": i["sk"]} for i in resp.get("Items", [])]
        for key in keys:
            self.client.delete_item(TableName=self.table, Key=key)
        return bool(keys)


class ThreadStore:
    """Threads. `active_run_id` is the lease: at most one run of a thread executes at a time."""

    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table

    def _key(self, thread_id: str) -> dict[str, Any]:
        return {"thread_id": _s(thread_id)}

    def create(self, doc: dict[str, Any], *, if_absent: bool = True) -> bool:
        item = {**_doc_item(doc, status=doc.get("status", "idle")), "thread_id": _s(doc["thread_id"])}
        kwargs = {"ConditionExpression": "attribute_not_exists(thread_id)"} if if_absent else {}
        try:
            self.client.put_item(TableName=self.table, Item=item, **kwargs)
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def get(self, thread_id: str) -> dict[str, Any] | None:
        resp = self.client.get_item(TableName=self.table, Key=self._key(thread_id), ConsistentRead=True)
        return _from_item(resp.get("Item"))

    def all(self) -> list[dict[str, Any]]:
        return [d for d in map(_from_item, _scan(self.client, TableName=self.table)) if d]

    def delete(self, thread_id: str) -> bool:
        resp = self.client.delete_item(TableName=self.table, Key=self._key(thread_id), ReturnValues="ALL_OLD")
        return "Attributes" in resp

    def update_doc(self, thread_id: str, doc: dict[str, Any], *, status: str | None = None) -> None:
        """Rewrite the document (metadata, timestamps); conditions on existence only."""
        names = {"#d": "doc"}
        values: dict[str, Any] = {":d": _s(_doc_json(_strip_top(doc)))}
        expr = "SET #d = :d"
        if status:
            names["#s"] = "status"
            values[":s"] = _s(status)
            expr += ", #s = :s"
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(thread_id),
                UpdateExpression=expr,
                ConditionExpression="attribute_exists(thread_id)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise Conflict(f"thread {thread_id} does not exist") from exc
            raise

    def set_status(self, thread_id: str, status: str, *, unless_leased_by_other: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        values: dict[str, Any] = {":s": _s(status)}
        cond = "attribute_exists(thread_id)"
        if unless_leased_by_other is not None:
            cond += " AND (attribute_not_exists(active_run_id) OR active_run_id = :r)"
            values[":r"] = _s(unless_leased_by_other)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(thread_id),
                UpdateExpression="SET #s = :s",
                ConditionExpression=cond,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
                **kwargs,
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise Conflict(f"thread {thread_id}: status not changed") from exc
            raise

    def release_lease(
        self, thread_id: str, run_id: str, *, status: str, park_token: str | None = None, if_idle: bool = False
    ) -> bool:
        """Free the lease held by run_id and set the thread's status in the same write. With
        `if_idle`, only if no run is queued on the thread either."""
        expr = "SET #s = :s REMOVE active_run_id"
        values: dict[str, Any] = {":r": _s(run_id), ":s": _s(status)}
        if park_token:
            expr = "SET #s = :s, task_token = :t, parked_run_id = :r REMOVE active_run_id"
            values[":t"] = _s(park_token)
        return update_if(
            self.client,
            TableName=self.table,
            Key=self._key(thread_id),
            UpdateExpression=expr,
            ConditionExpression="active_run_id = :r" + (" AND attribute_not_exists(pending)" if if_idle else ""),
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )

    def take_parked(self, thread_id: str, parked_run_id: str, run_id: str) -> bool:
        """Lease the thread to run_id, which continues the parked execution of parked_run_id
        (its deadline passed). False if anyone moved first: a resume or new input (queued in
        `pending`, storage/queue.py, or already admitted), a delete."""
        return update_if(
            self.client,
            TableName=self.table,
            Key=self._key(thread_id),
            UpdateExpression="SET active_run_id = :r, #s = :busy REMOVE task_token, parked_run_id",
            ConditionExpression="parked_run_id = :p AND attribute_not_exists(active_run_id) "
            "AND attribute_not_exists(pending)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":r": _s(run_id), ":p": _s(parked_run_id), ":busy": _s("busy")},
        )

    def forget_park(self, thread_id: str, parked_run_id: str) -> bool:
        """Drop the token of a parked execution that is gone (deadline passed, thread abandoned)."""
        return update_if(
            self.client,
            TableName=self.table,
            Key=self._key(thread_id),
            UpdateExpression="REMOVE task_token, parked_run_id",
            ConditionExpression="parked_run_id = :p",
            ExpressionAttributeValues={":p": _s(parked_run_id)},
        )


def _strip_top(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("status", "active_run_id", "parked_run_id", "task_token")}


class RunStore:
    """Runs, keyed (thread_id, run_id). Run ids are UUIDv7, so key order is creation order."""

    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table

    def _key(self, thread_id: str, run_id: str) -> dict[str, Any]:
        return {"thread_id": _s(thread_id), "run_id": _s(run_id)}

    def create(self, doc: dict[str, Any]) -> None:
        item = {
            **_doc_item(_strip_top(doc), status=doc["status"]),
            **self._key(doc["thread_id"], doc["run_id"]),
        }
        self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(run_id)")

    def get(self, thread_id: str, run_id: str) -> dict[str, Any] | None:
        resp = self.client.get_item(TableName=self.table, Key=self._key(thread_id, run_id), ConsistentRead=True)
        return _from_item(resp.get("Item"))

    def list(self, thread_id: str) -> list[dict[str, Any]]:
        """Newest first."""
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            resp = self.client.query(
                TableName=self.table,
                KeyConditionExpression="thread_id = :t",
                ExpressionAttributeValues={":t": _s(thread_id)},
                ScanIndexForward=False,
                ConsistentRead=True,
                **kwargs,
            )
            out.extend(d for d in map(_from_item, resp.get("Items", [])) if d)
            if "LastEvaluatedKey" not in resp:
                return out
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def transition(
        self,
        thread_id: str,
        run_id: str,
        *,
        to: str,
        expected: tuple[str, ...],
        patch: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
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
        return _from_item(resp["Attributes"])

    def transition_action(
        self, thread_id: str, run_id: str, *, to: str, expected: tuple[str, ...], patch: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """`transition` as the arguments of an UpdateItem, or of a transaction's Update action."""
        names = {"#s": "status"}
        values: dict[str, Any] = {
            ":s": _s(to),
            ":u": _s(now_iso()),
            **{f":e{i}": _s(s) for i, s in enumerate(expected)},
        }
        sets = ["#s = :s", "updated_at = :u"]
        for i, (key, value) in enumerate((patch or {}).items()):
            names[f"#p{i}"] = f"x_{key}"
            values[f":p{i}"] = _s(serde.dumps_str(value))
            sets.append(f"#p{i} = :p{i}")
        return {
            "TableName": self.table,
            "Key": self._key(thread_id, run_id),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": "#s IN (" + ", ".join(f":e{i}" for i in range(len(expected))) + ")",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def delete(self, thread_id: str, run_id: str) -> bool:
        resp = self.client.delete_item(TableName=self.table, Key=self._key(thread_id, run_id), ReturnValues="ALL_OLD")
        return "Attributes" in resp

    def delete_thread(self, thread_id: str) -> None:
        for run in self.list(thread_id):
            self.delete(thread_id, run["run_id"])

    def with_status(self, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        """Runs of every thread whose status is one of `statuses`. The table has no index on
        status across threads, so this scans: bulk cancel and metrics, administrative paths."""
        values = {f":s{i}": _s(s) for i, s in enumerate(statuses)}
        items = _scan(
            self.client,
            TableName=self.table,
            FilterExpression="#s IN (" + ", ".join(values) + ")",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )
        return [d for d in map(_from_item, items) if d]
