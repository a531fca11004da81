"""The stream event log: (run_id, seq) items with a TTL, tailed by the API's SSE endpoints.

Writers (the step, park and finish functions) append; readers replay from any seq, on any API
instance. A Notifier tells local readers that new events landed, so nothing polls in-process;
on AWS readers poll DynamoDB with a short backoff instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from stepgraph import serde
from stepgraph.storage.dynamo import Item, batch_write, is_conditional_failure, paginate, s
from stepgraph.storage.errors import SeqTaken

__all__ = ["END", "END_SEQ", "Event", "EventLog", "InProcessNotifier", "Notifier", "PollingNotifier", "Subscription"]

logger = logging.getLogger(__name__)

# Internal marker written when a run stops (done, error, parked, cancelled); never sent to clients.
# It sits at a fixed, maximal seq: writing it needs no read, a second writer (finish after a
# cancel) is a no-op, and readers see it after every event of the run.
END = "__end__"
END_SEQ = 2**53 - 1
_HINTS = 4096  # runs whose next seq a process remembers
# TransactWriteItems takes at most 100 actions and 4 MB; a batch is cut to stay below both.
_TX_ACTIONS = 100
_TX_BYTES = 3_500_000
_ITEM_OVERHEAD = 100  # attribute names, numbers and the item's own overhead, counted generously
_DELETE_BATCH = 1000  # DeleteObjects' maximum


@dataclass(frozen=True)
class Event:
    seq: int
    event: str
    data: Any


class Subscription(Protocol):
    def clear(self) -> None: ...

    async def wait(self, timeout: float) -> None: ...


class Notifier(Protocol):
    def notify(self, run_id: str) -> None: ...

    def subscribe(self, run_id: str) -> contextlib.AbstractContextManager[Subscription]: ...


class _Sleep:
    def __init__(self, interval: float):
        self.interval = interval

    def clear(self) -> None:
        return None

    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(min(self.interval, timeout))


class PollingNotifier:
    """AWS: writers run in other Lambdas, so readers re-query after a short sleep."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval

    def notify(self, run_id: str) -> None:
        return None  # nothing to wake across processes

    @contextlib.contextmanager
    def subscribe(self, run_id: str) -> Iterator[Subscription]:
        yield _Sleep(self.interval)


class _Wakeup:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def clear(self) -> None:
        self.event.clear()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return  # no write within the timeout: the normal end of a quiet wait, the reader reads again


class InProcessNotifier:
    """Local runtime: writers and readers share a process; wake readers the moment a write lands.

    A reader subscribes, clears, reads, then waits: a write between its read and its wait still
    wakes it, because the wake-up is latched in an asyncio.Event.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[_Wakeup]] = {}

    def notify(self, run_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(run_id, ()))
        for waiter in waiters:
            try:
                waiter.loop.call_soon_threadsafe(waiter.event.set)
            except RuntimeError:
                # Its loop closed without unsubscribing (a reader torn down mid-wait): nobody to wake.
                logger.debug("event log reader of run %s: its event loop is closed, not woken", run_id)

    @contextlib.contextmanager
    def subscribe(self, run_id: str) -> Iterator[Subscription]:
        waiter = _Wakeup()
        with self._lock:
            self._waiters.setdefault(run_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                waiters = self._waiters.get(run_id)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[run_id]


class EventLog:
    """Every run's stream events: each seq written once, readable from any seq until its TTL."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        s3: Any = None,
        bucket: str = "",
        ttl_seconds: int = 86_400,
        spill_threshold_bytes: int = 350_000,
        notifier: Notifier | None = None,
    ):
        self.client, self.table = client, table
        self.s3, self.bucket = s3, bucket
        self.ttl_seconds = ttl_seconds
        self.spill_threshold_bytes = spill_threshold_bytes
        self.notifier: Notifier = notifier or PollingNotifier()
        # The next free seq of the runs this process wrote to last: a warm Lambda's next
        # invocation of the same run starts there instead of asking DynamoDB. Only a guess: a
        # write at a taken seq fails as any conflicting write does, and the writer then reads.
        self._hints: OrderedDict[str, int] = OrderedDict()
        self._hints_lock = threading.Lock()

    # ------------------------------------------------------------------ write
    def next_seq_hint(self, run_id: str) -> int | None:
        with self._hints_lock:
            return self._hints.get(run_id)

    def _hint(self, run_id: str, next_seq: int | None) -> None:
        with self._hints_lock:
            self._hints.pop(run_id, None)
            if next_seq is not None:
                self._hints[run_id] = next_seq
                if len(self._hints) > _HINTS:
                    self._hints.popitem(last=False)

    def last_seq(self, run_id: str) -> int:
        """The seq of the run's last event (the end marker excluded)."""
        resp = self.client.query(
            TableName=self.table,
            KeyConditionExpression="run_id = :r AND seq < :end",
            ExpressionAttributeValues={":r": s(run_id), ":end": {"N": str(END_SEQ)}},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
            ProjectionExpression="seq",
        )
        items = resp.get("Items", [])
        return int(items[0]["seq"]["N"]) if items else 0

    def _item(self, run_id: str, seq: int, event: str, data: Any, expires_at: int) -> tuple[Item, int]:
        """The event's item and its size in bytes (about: names and numbers counted generously)."""
        body = serde.dumps(data)
        item: Item = {
            "run_id": s(run_id),
            "seq": {"N": str(seq)},
            "event": s(event),
            "expires_at": {"N": str(expires_at)},
        }
        if len(body) > self.spill_threshold_bytes and self.s3 is not None:
            # A fresh key per attempt, as checkpoint spills: a duplicate writer of the same seq
            # never overwrites the object the winner's item points at, and the loser deletes its own.
            key = f"{events_prefix(run_id)}{seq:012d}-{uuid.uuid4().hex}"
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
            item["s3_key"] = s(key)
        else:
            item["data"] = {"B": body}
        return item, len(body if "data" in item else item["s3_key"]["S"]) + len(run_id) + len(event) + _ITEM_OVERHEAD

    def write(self, run_id: str, first_seq: int, events: list[tuple[str, Any]]) -> None:
        """Write events at first_seq, first_seq+1, ... Each seq is written once (conditional):
        a duplicate writer of the same run gets a Conflict instead of interleaving. A batch goes in
        as few transactions as DynamoDB's limits allow (100 actions, 4 MB each), in seq order."""
        expires_at = int(time.time()) + self.ttl_seconds
        sized = [self._item(run_id, first_seq + i, e, d, expires_at) for i, (e, d) in enumerate(events)]
        items = [item for item, _ in sized]
        chunks = _chunks(sized)
        for n, chunk in enumerate(chunks):
            try:
                if len(chunk) == 1:
                    self.client.put_item(
                        TableName=self.table, Item=chunk[0], ConditionExpression="attribute_not_exists(seq)"
                    )
                else:
                    self.client.transact_write_items(
                        TransactItems=[
                            {
                                "Put": {
                                    "TableName": self.table,
                                    "Item": item,
                                    "ConditionExpression": "attribute_not_exists(seq)",
                                }
                            }
                            for item in chunk
                        ]
                    )
            except ClientError as exc:
                if first_seq != END_SEQ:
                    self._hint(run_id, None)
                # Objects of the items not written (the failed chunk is all or nothing): nobody
                # points at them, so they go now rather than with the lifecycle rule.
                self._delete_objects([i for c in chunks[n:] for i in c])
                if is_conditional_failure(exc):
                    raise SeqTaken(run_id) from exc
                raise
        if first_seq != END_SEQ:
            self._hint(run_id, first_seq + len(items))
        self.notifier.notify(run_id)

    def end(self, run_id: str, data: Any) -> bool:
        """Mark the run's log as ended; False if it already was (idempotent)."""
        try:
            self.write(run_id, END_SEQ, [(END, data)])
        except SeqTaken:
            return False
        return True

    def append(self, run_id: str, event: str, data: Any) -> int:
        """Append one event after whatever is there (for park/finish/API markers)."""
        hint = self.next_seq_hint(run_id)
        for _ in range(20):
            seq, hint = (hint if hint is not None else self.last_seq(run_id) + 1), None
            try:
                self.write(run_id, seq, [(event, data)])
                return seq
            except SeqTaken:
                continue
        raise RuntimeError(f"could not append to the event log of run {run_id}")

    # ------------------------------------------------------------------ read
    def read(self, run_id: str, after: int = 0, limit: int = 500) -> list[Event]:
        """Up to `limit` live events after seq `after`. Pages on past DynamoDB's 1 MB page and past
        expired items, so an empty answer means nothing newer is there, never a page cut short."""
        items = paginate(
            self.client.query,
            TableName=self.table,
            KeyConditionExpression="run_id = :r AND seq > :s",
            ExpressionAttributeValues={":r": s(run_id), ":s": {"N": str(after)}},
            ScanIndexForward=True,
            ConsistentRead=True,
            Limit=limit,
        )
        now = int(time.time())
        out: list[Event] = []
        for item in items:
            # TTL deletion is lazy on AWS and absent in moto: expired means gone.
            if int(item["expires_at"]["N"]) < now:
                continue
            if "s3_key" in item:
                body = self.s3.get_object(Bucket=self.bucket, Key=item["s3_key"]["S"])["Body"].read()
            else:
                body = item["data"]["B"]
            out.append(Event(int(item["seq"]["N"]), item["event"]["S"], serde.loads(body)))
            if len(out) == limit:
                break
        return out

    def delete_run(self, run_id: str) -> None:
        """Delete the run's events and the objects they spilled to (items first: a crash in between
        leaves objects, which the bucket's lifecycle rule expires, never an item without its object)."""
        items = list(
            paginate(
                self.client.query,
                TableName=self.table,
                KeyConditionExpression="run_id = :r",
                ExpressionAttributeValues={":r": s(run_id)},
                ProjectionExpression="run_id, seq, s3_key",
            )
        )
        keys = ({"DeleteRequest": {"Key": {"run_id": i["run_id"], "seq": i["seq"]}}} for i in items)
        batch_write(self.client, self.table, keys)
        self._delete_objects(items)

    def _delete_objects(self, items: list[Item]) -> None:
        keys = [{"Key": i["s3_key"]["S"]} for i in items if "s3_key" in i]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = {"Objects": keys[start : start + _DELETE_BATCH], "Quiet": True}
            self.s3.delete_objects(Bucket=self.bucket, Delete=batch)


def events_prefix(run_id: str) -> str:
    """Where a run's spilled events live: under `events/`, which the bucket's lifecycle rule expires
    after the event log's TTL (template.yaml)."""
    return f"events/{run_id}/"


def _chunks(sized: list[tuple[Item, int]]) -> list[list[Item]]:
    """Items in seq order, cut into runs that each fit one TransactWriteItems."""
    chunks: list[list[Item]] = []
    size = 0
    for item, item_size in sized:
        if not chunks or len(chunks[-1]) == _TX_ACTIONS or size + item_size > _TX_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item_size
    return chunks
