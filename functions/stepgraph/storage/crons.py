"""Crons, in the crons table: one document an item (sort key `cron`), found by assistant, by
thread or all at once through sparse indexes (no scan), and beside each cron the record of each
fire (sort key `fire#<time>`): what makes a fire delivered twice create one run.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from stepgraph import serde
from stepgraph.storage.documents import Document, doc_json
from stepgraph.storage.dynamo import Item, batch_write, is_conditional_failure, paginate, s, update_if
from stepgraph.storage.errors import Conflict

__all__ = ["CronStore", "FireRecord"]

_DOC = "cron"
_FIRE = "fire#"
_KIND = "cron"  # the one partition of the `all` index
# A fire's record outlives every retry of its delivery (EventBridge Scheduler retries for up to
# 24 hours), then expires.
_FIRE_TTL_SECONDS = 7 * 86_400

FireRecord = dict[str, Any]  # {"claimed_at": epoch seconds, "run_id": ..., "thread_id": ...}


class CronStore:
    """Crons. Each write of a cron is conditional on its `version` (optimistic locking): a PATCH and a
    fire that advances `next_run_date` never overwrite each other."""

    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table

    def _key(self, cron_id: str, sk: str = _DOC) -> Item:
        return {"cron_id": s(cron_id), "sk": s(sk)}

    def _item(self, doc: Document) -> Item:
        item: Item = {
            **self._key(doc["cron_id"]),
            "doc": s(doc_json(doc)),
            "kind": s(_KIND),
            "assistant_id": s(doc["assistant_id"]),
            "created_at": s(doc["created_at"]),
            "version": {"N": str(doc["version"])},
        }
        if doc.get("thread_id"):
            item["thread_id"] = s(doc["thread_id"])
        return item

    def create(self, doc: Document) -> None:
        """A new cron (`version` 1). Raises Conflict if the id is taken."""
        doc["version"] = 1
        try:
            self.client.put_item(
                TableName=self.table, Item=self._item(doc), ConditionExpression="attribute_not_exists(cron_id)"
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise Conflict(f"cron {doc['cron_id']} exists") from exc
            raise

    def get(self, cron_id: str) -> Document | None:
        item = self.client.get_item(TableName=self.table, Key=self._key(cron_id), ConsistentRead=True).get("Item")
        return _doc(item) if item else None

    def replace(self, doc: Document) -> Document:
        """Write `doc` over the version it was read at (`doc["version"]`), as the next version.
        Raises Conflict if the cron changed (or went) meanwhile."""
        expected = int(doc["version"])
        new = {**doc, "version": expected + 1}
        try:
            self.client.put_item(
                TableName=self.table,
                Item=self._item(new),
                ConditionExpression="version = :v",
                ExpressionAttributeValues={":v": {"N": str(expected)}},
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise Conflict(f"cron {doc['cron_id']} changed") from exc
            raise
        return new

    def delete(self, cron_id: str) -> bool:
        """The cron and the records of its fires; False if there was no cron."""
        resp = self.client.delete_item(TableName=self.table, Key=self._key(cron_id), ReturnValues="ALL_OLD")
        fires = paginate(
            self.client.query,
            TableName=self.table,
            KeyConditionExpression="cron_id = :c AND begins_with(sk, :f)",
            ExpressionAttributeValues={":c": s(cron_id), ":f": s(_FIRE)},
            ProjectionExpression="cron_id, sk",
        )
        batch_write(self.client, self.table, ({"DeleteRequest": {"Key": key}} for key in fires))
        return "Attributes" in resp

    def search(self, *, assistant_id: str | None = None, thread_id: str | None = None) -> list[Document]:
        """Crons of a thread, of an assistant, or all: one Query of a sparse index each."""
        if thread_id is not None:
            index, key, value = "by_thread", "thread_id", thread_id
        elif assistant_id is not None:
            index, key, value = "by_assistant", "assistant_id", assistant_id
        else:
            index, key, value = "all", "kind", _KIND
        items = paginate(
            self.client.query,
            TableName=self.table,
            IndexName=index,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": key},
            ExpressionAttributeValues={":v": s(value)},
        )
        crons = [_doc(item) for item in items]
        if thread_id is not None and assistant_id is not None:
            crons = [c for c in crons if c["assistant_id"] == assistant_id]
        return crons

    # ------------------------------------------------------------------ fires
    def claim_fire(self, cron_id: str, fire_at: str) -> FireRecord | None:
        """Claim the fire of `cron_id` at `fire_at`: None if this call claimed it, else the record
        of whoever did (a duplicate delivery, or an earlier try of this one)."""
        now = time.time()
        item = {
            **self._key(cron_id, _FIRE + fire_at),
            "claimed_at": {"N": repr(now)},
            "expires_at": {"N": str(int(now) + _FIRE_TTL_SECONDS)},
        }
        try:
            self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(sk)")
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise
            got = self.client.get_item(
                TableName=self.table, Key=self._key(cron_id, _FIRE + fire_at), ConsistentRead=True
            ).get("Item")
            return _fire(got) if got else {"claimed_at": now}
        return None

    def take_over_fire(self, cron_id: str, fire_at: str, record: FireRecord) -> bool:
        """Claim anew a fire whose claimer never recorded a run (it crashed): True if this call
        won the record, as `record` was read."""
        return update_if(
            self.client,
            TableName=self.table,
            Key=self._key(cron_id, _FIRE + fire_at),
            UpdateExpression="SET claimed_at = :now",
            ConditionExpression="claimed_at = :then AND attribute_not_exists(run_id)",
            ExpressionAttributeValues={":now": {"N": repr(time.time())}, ":then": {"N": repr(record["claimed_at"])}},
        )

    def release_fire(self, cron_id: str, fire_at: str) -> None:
        """Give up a claim whose try failed before creating a run, so that the redelivery of the
        fire (EventBridge Scheduler retries a failed invocation) creates it."""
        update_if(
            self.client,
            TableName=self.table,
            Key=self._key(cron_id, _FIRE + fire_at),
            UpdateExpression="SET claimed_at = :never",
            ConditionExpression="attribute_exists(sk) AND attribute_not_exists(run_id)",
            ExpressionAttributeValues={":never": {"N": "0"}},
        )

    def record_fire(self, cron_id: str, fire_at: str, **fields: str) -> None:
        """What the fire did: the run it created (`run_id`, `thread_id`) or why it created none
        (`skipped`)."""
        names = {f"#{n}": name for n, name in enumerate(fields)}
        values = {f":{n}": s(value) for n, value in enumerate(fields.values())}
        self.client.update_item(
            TableName=self.table,
            Key=self._key(cron_id, _FIRE + fire_at),
            UpdateExpression="SET " + ", ".join(f"#{n} = :{n}" for n in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )


def _doc(item: Item) -> Document:
    doc: Document = serde.loads(item["doc"]["S"])
    doc["version"] = int(item["version"]["N"])
    return doc


def _fire(item: Item) -> FireRecord:
    record: FireRecord = {"claimed_at": float(item["claimed_at"]["N"])}
    for name in ("run_id", "thread_id", "skipped"):
        if name in item:
            record[name] = item[name]["S"]
    return record
