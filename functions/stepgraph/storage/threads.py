"""Threads, in the threads table: their documents, statuses and the lease (`active_run_id`).

The thread item also carries the run queue, written by `queue.ThreadQueue`; conditions here read
it (`pending`) so that no lease is taken or given up past a queued run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from stepgraph.storage.documents import Document, doc_item, doc_json, from_item, now_iso, strip_top
from stepgraph.storage.dynamo import Item, is_conditional_failure, s, update_if
from stepgraph.storage.errors import Conflict
from stepgraph.storage.listing import count_listed, listed, listing_attributes
from stepgraph.vocabulary import ThreadStatus

__all__ = ["ThreadStore"]


class ThreadStore:
    """Threads. `active_run_id` is the lease: at most one run of a thread executes at a time."""

    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table

    def _key(self, thread_id: str) -> Item:
        return {"thread_id": s(thread_id)}

    def create(self, doc: Document, *, if_absent: bool = True) -> bool:
        item = {
            **doc_item(doc, status=doc.get("status", ThreadStatus.IDLE)),
            **listing_attributes(doc["thread_id"], doc.get("created_at") or now_iso()),
            "thread_id": s(doc["thread_id"]),
        }
        kwargs = {"ConditionExpression": "attribute_not_exists(thread_id)"} if if_absent else {}
        try:
            self.client.put_item(TableName=self.table, Item=item, **kwargs)
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def get(self, thread_id: str) -> Document | None:
        resp = self.client.get_item(TableName=self.table, Key=self._key(thread_id), ConsistentRead=True)
        return from_item(resp.get("Item"))

    def listed(self, *, newest_first: bool = True, page: int = 0) -> Iterator[Document]:
        """Every thread by creation time, read lazily from the listing index (`listing.listed`)."""
        for item in listed(self.client, self.table, newest_first=newest_first, page=page):
            doc = from_item(item)
            if doc is not None:
                yield doc

    def all(self) -> list[Document]:
        """Every thread, newest first (from the index: no Scan)."""
        return list(self.listed())

    def count(self) -> int:
        return count_listed(self.client, self.table)

    def delete(self, thread_id: str) -> bool:
        resp = self.client.delete_item(TableName=self.table, Key=self._key(thread_id), ReturnValues="ALL_OLD")
        return "Attributes" in resp

    def update_doc(self, thread_id: str, doc: Document, *, status: str | None = None) -> None:
        """Rewrite the document (metadata, timestamps); conditions on existence only."""
        names = {"#d": "doc"}
        values: Item = {":d": s(doc_json(strip_top(doc)))}
        expr = "SET #d = :d"
        if status:
            names["#s"] = "status"
            values[":s"] = s(status)
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
        values: Item = {":s": s(status)}
        cond = "attribute_exists(thread_id)"
        if unless_leased_by_other is not None:
            cond += " AND (attribute_not_exists(active_run_id) OR active_run_id = :r)"
            values[":r"] = s(unless_leased_by_other)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(thread_id),
                UpdateExpression="SET #s = :s",
                ConditionExpression=cond,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
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
        values: Item = {":r": s(run_id), ":s": s(status)}
        if park_token:
            expr = "SET #s = :s, task_token = :t, parked_run_id = :r REMOVE active_run_id"
            values[":t"] = s(park_token)
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
            ExpressionAttributeValues={":r": s(run_id), ":p": s(parked_run_id), ":busy": s(ThreadStatus.BUSY)},
        )

    def forget_park(self, thread_id: str, parked_run_id: str) -> bool:
        """Drop the token of a parked execution that is gone (deadline passed, thread abandoned)."""
        return update_if(
            self.client,
            TableName=self.table,
            Key=self._key(thread_id),
            UpdateExpression="REMOVE task_token, parked_run_id",
            ConditionExpression="parked_run_id = :p",
            ExpressionAttributeValues={":p": s(parked_run_id)},
        )
