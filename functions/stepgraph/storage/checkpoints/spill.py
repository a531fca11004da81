"""Checkpoint values too large for an item live in S3: the item keeps the object's key. Every write
spills to a fresh key, so an object belongs to exactly one item and is deleted with it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from stepgraph.storage.dynamo import Item, s

_DELETE_BATCH = 1000  # DeleteObjects' maximum


def thread_prefix(thread_id: str) -> str:
    """Where a thread's objects live; delete_thread sweeps it, orphans included."""
    return f"checkpoints/{quote(thread_id, safe='')}/"


class Spill:
    def __init__(self, s3_client: Any, bucket: str, threshold_bytes: int):
        self.s3, self.bucket, self.threshold_bytes = s3_client, bucket, threshold_bytes

    def payload(
        self,
        type_: str,
        data: bytes,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        name: str,
        *,
        threshold_bytes: int | None = None,
    ) -> tuple[Item, str | None]:
        """A serialized value's attributes: the bytes themselves, or the key of the object they
        spilled to (returned too, so that whoever loses the write can delete it). Spilled over
        `threshold_bytes` (default: the spill's own), what the rest of the item leaves room for."""
        if len(data) <= (self.threshold_bytes if threshold_bytes is None else threshold_bytes):
            return {"type": s(type_), "data": {"B": data}}, None
        # A fresh key per attempt: no object is ever overwritten or shared, so whoever loses a
        # conditional write may delete its own object without asking who else uses it.
        key = f"{thread_prefix(thread_id)}ns={quote(ns, safe='')}/{checkpoint_id}/{name}-{uuid.uuid4().hex}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)  # before the item: no dangling key
        return {"type": s(type_), "s3_key": s(key)}, key

    def data(self, item: Item, inline: str = "data", spilled: str = "s3_key") -> bytes:
        """The serialized value an item holds (attribute `inline`) or points at (`spilled`)."""
        if inline in item:
            data: bytes = item[inline]["B"]
            return data
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=item[spilled]["S"])["Body"].read()
        return body

    def copy(self, key: str, source_thread_id: str, target_thread_id: str) -> str:
        """A copy of a source thread's object for the target thread (an object of its own, so that
        deleting either thread spares the other); returns its key."""
        copied = thread_prefix(target_thread_id) + key.removeprefix(thread_prefix(source_thread_id))
        self.s3.copy_object(Bucket=self.bucket, Key=copied, CopySource={"Bucket": self.bucket, "Key": key})
        return copied

    def delete(self, keys: Sequence[str]) -> None:
        for i in range(0, len(keys), _DELETE_BATCH):
            objects = [{"Key": k} for k in keys[i : i + _DELETE_BATCH]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def delete_thread(self, thread_id: str) -> None:
        """Delete every object under the thread's prefix, including those orphaned by a crash in
        the middle of a put."""
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=thread_prefix(thread_id)):
            self.delete([obj["Key"] for obj in page.get("Contents", [])])
