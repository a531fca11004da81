"""LangGraph's long-term store (`BaseStore`) on DynamoDB: what a node's `runtime.store` and the
API's `/store` routes read and write, shared by every thread.

Key design (one table, `StoreTable`):

- an item: `pk` = its namespace's first label, `sk` = the other labels, each followed by "/",
  then "|" and the key. Labels are percent-encoded, so neither "/" nor "|" occurs inside one and
  `("a", "b")` never reaches into `("a", "bc")`. A search under a namespace prefix is one Query
  (`pk` = the first label, `begins_with(sk, the rest)`); under the empty prefix, one Query per
  first label.
- a namespace: a marker item in one of 16 `#namespaces#NN` partitions (by a hash of the first
  label; never a quoted label, which cannot hold "#"; `sk` = every label followed by "/"),
  written in the same transaction as each put (its version `v` goes up) and deleted once the
  namespace is empty, conditional on the version it was seen with: a put racing the delete
  keeps it. `list_namespaces` is one Query of the prefix's shard (`begins_with` the literal
  part of the prefix), or one per shard without a first label.

Limits: every namespace under one first label shares a partition (DynamoDB's per-partition
throughput; adaptive capacity splits it by sort key), so `(user_id, "memories")` spreads better
than `("memories", user_id)`; each put also writes its namespace's marker shard. `search` reads
every item under the prefix and ranks or sorts them here: its cost grows with the items under
the prefix, not with `limit`.

TTL (minutes): `expires_at` is DynamoDB's TTL attribute (whole seconds); DynamoDB deletes
lazily (up to days later), so every read also drops what `expires_ms` says has expired. A
namespace marker expires with the latest item put with a TTL; once a namespace has held an item
without one, it is listed until its items are deleted.

Values over the spill threshold go to S3 (`store/<uuid>`) as checkpoints do: the item keeps the
key, each put writes a fresh object, and whoever removes an item deletes its object.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
from langgraph.store.base import (
    BaseStore,
    Embeddings,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)

from stepgraph.storage.dynamo import Item as DynamoItem
from stepgraph.storage.dynamo import contended, paginate, s, transact
from stepgraph.storage.errors import Conflict
from stepgraph.vocabulary import AwsError

__all__ = ["DynamoDBStore", "KeyTooLong", "item_key", "namespace_key"]

logger = logging.getLogger(__name__)

NAMESPACES_PK = "#namespaces"
# Namespace markers are spread over this many partitions (by their first label), so that every put
# writing its marker does not make one partition the whole store's write limit.
NAMESPACE_SHARDS = 16
_KEY_MARK = "|"
_ATTEMPTS = 8
_MAX_PK_BYTES, _MAX_SK_BYTES = 2048, 1024  # DynamoDB's key attribute limits
# What a read needs of an item; `ns` and `key` are reserved words in neither, but `value` is.
_NOT_EXPIRED = "attribute_not_exists(expires_ms) OR expires_ms > :now"


def _label(label: str) -> str:
    return quote(label, safe="")


def _path(labels: Sequence[str]) -> str:
    return "".join(_label(label) + "/" for label in labels)


class KeyTooLong(ValueError):
    """A namespace and key longer than DynamoDB's keys hold (1,024 bytes of sort key)."""


def _checked(pk: str, sk: str) -> DynamoItem:
    if len(pk.encode()) > _MAX_PK_BYTES or len(sk.encode()) > _MAX_SK_BYTES:
        raise KeyTooLong(
            f"namespace and key too long for the store: at most {_MAX_SK_BYTES} bytes once encoded "
            f"(labels percent-encoded, each followed by one byte), the first label {_MAX_PK_BYTES}"
        )
    return {"pk": s(pk), "sk": s(sk)}


def item_key(namespace: Sequence[str], key: str) -> DynamoItem:
    """The primary key of the item `key` in `namespace`."""
    return _checked(_label(namespace[0]), _path(namespace[1:]) + _KEY_MARK + key)


def _marker_pk(first_label: str) -> str:
    return f"{NAMESPACES_PK}#{zlib.crc32(first_label.encode()) % NAMESPACE_SHARDS:02d}"


def namespace_key(namespace: Sequence[str]) -> DynamoItem:
    """The primary key of a namespace's marker."""
    return _checked(_marker_pk(namespace[0]), _path(namespace))


@dataclass(frozen=True)
class _Stored:
    """An item as read from the table, before its value is decoded."""

    raw: DynamoItem

    @property
    def namespace(self) -> tuple[str, ...]:
        return tuple(label["S"] for label in self.raw["ns"]["L"])

    @property
    def key(self) -> str:
        return str(self.raw["key"]["S"])

    @property
    def rev(self) -> str:
        return str(self.raw["rev"]["S"])

    @property
    def ttl_minutes(self) -> float | None:
        return float(self.raw["ttl_minutes"]["N"]) if "ttl_minutes" in self.raw else None

    @property
    def updated_at(self) -> str:
        return str(self.raw["updated_at"]["S"])

    def expired(self, now_ms: float) -> bool:
        return "expires_ms" in self.raw and float(self.raw["expires_ms"]["N"]) <= now_ms

    def vectors(self) -> list[list[float]]:
        return [array("f", v["B"]).tolist() for v in self.raw.get("vectors", {}).get("M", {}).values()]


class DynamoDBStore(BaseStore):
    """`BaseStore` on one DynamoDB table (key design above), with TTL and, given an `index`,
    semantic search: each indexed field's vector is kept with its item (float32), and a search
    with a `query` ranks the items under the prefix by cosine similarity (the best field wins)."""

    supports_ttl = True

    def __init__(
        self,
        dynamodb_client: Any,
        table: str,
        *,
        s3_client: Any = None,
        bucket: str = "",
        spill_threshold_bytes: int = 350_000,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dynamodb, self.table = dynamodb_client, table
        self.s3, self.bucket, self.spill_threshold_bytes = s3_client, bucket, spill_threshold_bytes
        self.ttl_config = ttl
        self.clock = clock
        self.index_config = index
        self.embeddings: Embeddings | None = ensure_embeddings(index.get("embed")) if index else None
        fields = (index or {}).get("fields") or ["$"]
        self._fields: list[tuple[str, str | list[str]]] = [(f, f if f == "$" else tokenize_path(f)) for f in fields]

    # ------------------------------------------------------------------ the BaseStore contract
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
        texts = self._texts_to_embed(ops)
        vectors = self.embeddings.embed_documents([t for _, t in texts]) if texts and self.embeddings else []
        queries = self._queries(ops)
        query_vectors = {q: self.embeddings.embed_query(q) for q in queries} if self.embeddings else {}
        return self._execute(ops, texts, vectors, query_vectors)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
        texts = self._texts_to_embed(ops)
        vectors = await self.embeddings.aembed_documents([t for _, t in texts]) if texts and self.embeddings else []
        queries = self._queries(ops)
        query_vectors: dict[str, list[float]] = {}
        if self.embeddings and queries:
            embedded = await asyncio.gather(*(self.embeddings.aembed_query(q) for q in queries))
            query_vectors = dict(zip(queries, embedded, strict=True))
        # boto3 blocks: the table's calls run in a worker thread, off the caller's event loop.
        return await asyncio.to_thread(self._execute, ops, texts, vectors, query_vectors)

    # ------------------------------------------------------------------ embedding
    def _texts_to_embed(self, ops: list[Op]) -> list[tuple[tuple[int, str], str]]:
        """(op index, field path) and text, for every field each put indexes."""
        if not self.embeddings:
            return []
        texts: list[tuple[tuple[int, str], str]] = []
        for i, op in enumerate(ops):
            if not isinstance(op, PutOp) or op.value is None or op.index is False:
                continue
            fields = self._fields if op.index is None else [(f, tokenize_path(f)) for f in op.index]
            for path, tokens in fields:
                found = get_text_at_path(op.value, tokens)
                for n, text in enumerate(found):
                    texts.append(((i, path if len(found) == 1 else f"{path}.{n}"), text))
        return texts

    def _queries(self, ops: list[Op]) -> list[str]:
        return sorted({op.query for op in ops if isinstance(op, SearchOp) and op.query})

    def _execute(
        self,
        ops: list[Op],
        texts: list[tuple[tuple[int, str], str]],
        vectors: Sequence[Sequence[float]],
        query_vectors: dict[str, list[float]],
    ) -> list[Result]:
        by_op: dict[int, dict[str, Sequence[float]]] = {}
        for ((i, path), _), vector in zip(texts, vectors, strict=True):
            by_op.setdefault(i, {})[path] = vector
        results: list[Result] = []
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, PutOp):
                self._put(op, by_op.get(i, {}))
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(self._search(op, query_vectors.get(op.query) if op.query else None))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise ValueError(f"Unknown operation type: {type(op)}")
        return results

    # ------------------------------------------------------------------ reads
    def _now_ms(self) -> float:
        return self.clock() * 1000

    def _read(self, namespace: tuple[str, ...], key: str) -> _Stored | None:
        raw = self.dynamodb.get_item(TableName=self.table, Key=item_key(namespace, key), ConsistentRead=True).get(
            "Item"
        )
        return _Stored(raw) if raw else None

    def _get(self, op: GetOp) -> Item | None:
        stored = self._read(op.namespace, op.key)
        if stored is None or stored.expired(self._now_ms()):
            return None
        if op.refresh_ttl:
            self._refresh(stored)
        return self._item(stored)

    def _value(self, stored: _Stored) -> dict[str, Any]:
        raw = stored.raw
        if "value" in raw:
            data: bytes | str = raw["value"]["S"]
        else:
            data = self.s3.get_object(Bucket=self.bucket, Key=raw["s3_key"]["S"])["Body"].read()
        value: dict[str, Any] = orjson.loads(data)
        return value

    def _item(self, stored: _Stored, value: dict[str, Any] | None = None) -> Item:
        return Item(
            value=self._value(stored) if value is None else value,
            key=stored.key,
            namespace=stored.namespace,
            created_at=datetime.fromisoformat(stored.raw["created_at"]["S"]),
            updated_at=datetime.fromisoformat(stored.updated_at),
        )

    def _items_under(self, prefix: tuple[str, ...]) -> Iterator[_Stored]:
        """Every item (expired ones included) whose namespace starts with `prefix`: Queries."""
        if not prefix:
            first_labels = sorted({ns[0] for ns in self._namespaces(())})
            for label in first_labels:
                yield from self._items_under((label,))
            return
        request: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": s(_label(prefix[0]))},
        }
        if len(prefix) > 1:
            request["KeyConditionExpression"] += " AND begins_with(sk, :rest)"
            request["ExpressionAttributeValues"][":rest"] = s(_path(prefix[1:]))
        for raw in paginate(self.dynamodb.query, **request):
            yield _Stored(raw)

    def _search(self, op: SearchOp, query_vector: list[float] | None) -> list[SearchItem]:
        now_ms = self._now_ms()
        candidates: list[tuple[_Stored, dict[str, Any]]] = []
        for stored in self._items_under(op.namespace_prefix):
            if stored.expired(now_ms):
                continue
            value = self._value(stored)
            if op.filter and not _passes(value, op.filter):
                continue
            candidates.append((stored, value))
        scored: list[tuple[float | None, _Stored, dict[str, Any]]]
        if query_vector is not None:
            ranked = [(_best_score(query_vector, st.vectors()), st, v) for st, v in candidates]
            # Items without a vector (put with index=False, or before the index was configured) come last.
            scored = sorted((r for r in ranked if r[0] is not None), key=lambda r: -(r[0] or 0.0))
            scored += [r for r in ranked if r[0] is None]
        else:
            candidates.sort(key=lambda c: c[0].updated_at, reverse=True)  # newest first, as PostgresStore
            scored = [(None, st, v) for st, v in candidates]
        page = scored[op.offset : op.offset + op.limit]
        if op.refresh_ttl:
            for _, stored, _ in page:
                self._refresh(stored)
        return [
            SearchItem(
                namespace=stored.namespace,
                key=stored.key,
                value=value,
                created_at=datetime.fromisoformat(stored.raw["created_at"]["S"]),
                updated_at=datetime.fromisoformat(stored.updated_at),
                score=score,
            )
            for score, stored, value in page
        ]

    def _namespaces(self, literal_prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        """The namespaces (unexpired markers) whose labels start with `literal_prefix`: one Query
        of its first label's shard, or one per shard without a first label."""
        found: list[tuple[str, ...]] = []
        shards = (
            [_marker_pk(literal_prefix[0])]
            if literal_prefix
            else [f"{NAMESPACES_PK}#{n:02d}" for n in range(NAMESPACE_SHARDS)]
        )
        for pk in shards:
            request: dict[str, Any] = {
                "TableName": self.table,
                "ConsistentRead": True,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": s(pk), ":now": {"N": repr(self._now_ms())}},
                "FilterExpression": _NOT_EXPIRED,
                "ProjectionExpression": "ns",
            }
            if literal_prefix:
                request["KeyConditionExpression"] += " AND begins_with(sk, :prefix)"
                request["ExpressionAttributeValues"][":prefix"] = s(_path(literal_prefix))
            found.extend(
                tuple(label["S"] for label in raw["ns"]["L"]) for raw in paginate(self.dynamodb.query, **request)
            )
        return found

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = op.match_conditions or ()
        literal: tuple[str, ...] = ()
        for condition in conditions:
            if condition.match_type == "prefix":
                labels = []
                for label in condition.path:
                    if label == "*":
                        break
                    labels.append(label)
                literal = max(literal, tuple(labels), key=len)
        found = [ns for ns in self._namespaces(literal) if all(_does_match(c, ns) for c in conditions)]
        if op.max_depth is not None:
            found = [ns[: op.max_depth] for ns in found]
        return sorted(set(found))[op.offset : op.offset + op.limit]

    # ------------------------------------------------------------------ writes
    def _put(self, op: PutOp, vectors: dict[str, Sequence[float]]) -> None:
        if op.value is None:
            self._delete(op.namespace, op.key)
            return
        try:
            data = orjson.dumps(dict(op.value))
        except orjson.JSONEncodeError as exc:  # not JSON (or nested too deep): nothing is written
            raise ValueError(f"store values must be JSON objects: {exc}") from None
        for attempt in range(_ATTEMPTS):
            now = self.clock()
            old = self._read(op.namespace, op.key)
            new_key: str | None = None
            item: DynamoItem = {
                **item_key(op.namespace, op.key),
                "ns": {"L": [s(label) for label in op.namespace]},
                "key": s(op.key),
                "rev": s(uuid.uuid4().hex),
                "updated_at": s(_iso(now)),
            }
            fresh = old is None or old.expired(now * 1000)
            item["created_at"] = s(_iso(now)) if fresh or old is None else old.raw["created_at"]
            vector_bytes = sum(4 * len(v) for v in vectors.values())
            if vector_bytes > self.spill_threshold_bytes:
                raise ValueError(
                    f"{len(vectors)} indexed fields make {vector_bytes} bytes of vectors, more than an item holds: "
                    "index fewer fields"
                )
            if len(data) + vector_bytes <= self.spill_threshold_bytes:
                item["value"] = s(data.decode())
            else:
                new_key = f"store/{uuid.uuid4().hex}"
                self.s3.put_object(Bucket=self.bucket, Key=new_key, Body=data)  # before the item: no dangling key
                item["s3_key"] = s(new_key)
            if vectors:
                item["vectors"] = {"M": {path: {"B": array("f", v).tobytes()} for path, v in vectors.items()}}
            expires_ms: float | None = None
            if op.ttl is not None:
                expires_ms = now * 1000 + op.ttl * 60_000
                item.update(_expiry(expires_ms))
                item["ttl_minutes"] = {"N": repr(float(op.ttl))}
            put: DynamoItem = {"TableName": self.table, "Item": item}
            if old is None:
                put["ConditionExpression"] = "attribute_not_exists(pk)"
            else:  # compare-and-set: whoever replaces a version knows it, and deletes its object
                put["ConditionExpression"] = "rev = :rev"
                put["ExpressionAttributeValues"] = {":rev": s(old.rev)}
            codes = self._commit(put, op.namespace, expires_ms)
            if not codes:
                if old is not None and "s3_key" in old.raw:
                    self._delete_objects([old.raw["s3_key"]["S"]])
                return
            if new_key:
                self._delete_objects([new_key])
            if codes[0] != AwsError.CONDITION_FAILED and not contended(codes):
                raise RuntimeError(f"store put of {op.namespace}/{op.key} cancelled: {codes}")
            time.sleep(min(0.01 * 2**attempt, 0.5))  # another writer got there first: read again
        raise Conflict(f"store item {op.namespace}/{op.key} kept changing under {_ATTEMPTS} puts")

    def _commit(self, put: DynamoItem, namespace: tuple[str, ...], expires_ms: float | None) -> list[str | None]:
        """The item's put and its namespace's marker, in one transaction. A marker keeps the latest
        expiry of its items, or none once an item without a TTL arrived (`pinned`)."""
        marker: DynamoItem = {"TableName": self.table, "Key": namespace_key(namespace)}
        values: DynamoItem = {":ns": {"L": [s(label) for label in namespace]}, ":one": {"N": "1"}}
        if expires_ms is None:
            marker["UpdateExpression"] = "SET ns = :ns, pinned = :true ADD v :one REMOVE expires_at, expires_ms"
            values[":true"] = {"BOOL": True}
        else:
            marker["UpdateExpression"] = "SET ns = :ns, expires_at = :at, expires_ms = :ms ADD v :one"
            marker["ConditionExpression"] = (
                "attribute_not_exists(pinned) AND (attribute_not_exists(expires_ms) OR expires_ms < :ms)"
            )
            values.update(_values(_expiry(expires_ms)))
        marker["ExpressionAttributeValues"] = values
        codes = transact(self.dynamodb, [{"Put": put}, {"Update": marker}])
        marker_only = codes[1:] == [AwsError.CONDITION_FAILED] and codes[0] != AwsError.CONDITION_FAILED
        if expires_ms is not None and marker_only:
            # The marker already outlives this item (or never expires): only its version moves.
            del marker["ConditionExpression"]
            marker["UpdateExpression"] = "SET ns = :ns ADD v :one"
            marker["ExpressionAttributeValues"] = {":ns": values[":ns"], ":one": values[":one"]}
            codes = transact(self.dynamodb, [{"Put": put}, {"Update": marker}])
        return codes

    def _refresh(self, stored: _Stored) -> None:
        """A read with `refresh_ttl`: the item (if unchanged since read) and its namespace expire later."""
        minutes = stored.ttl_minutes
        if minutes is None:
            return
        expiry = _expiry(self._now_ms() + minutes * 60_000)
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=item_key(stored.namespace, stored.key),
                UpdateExpression="SET expires_at = :at, expires_ms = :ms",
                ConditionExpression="rev = :rev",
                ExpressionAttributeValues={**_values(expiry), ":rev": s(stored.rev)},
            )
            self.dynamodb.update_item(
                TableName=self.table,
                Key=namespace_key(stored.namespace),
                UpdateExpression="SET expires_at = :at, expires_ms = :ms",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(pinned) AND expires_ms < :ms",
                ExpressionAttributeValues=_values(expiry),
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            # Put or deleted since it was read (the new version has its own TTL), or the namespace
            # already lives longer: nothing to extend.
            logger.debug("store TTL of %s/%s not refreshed: changed meanwhile", stored.namespace, stored.key)

    def _delete(self, namespace: tuple[str, ...], key: str) -> None:
        old = self.dynamodb.delete_item(TableName=self.table, Key=item_key(namespace, key), ReturnValues="ALL_OLD").get(
            "Attributes"
        )
        if not old:
            return
        if "s3_key" in old:
            self._delete_objects([old["s3_key"]["S"]])
        marker = self.dynamodb.get_item(TableName=self.table, Key=namespace_key(namespace), ConsistentRead=True).get(
            "Item"
        )
        if marker is None or self._holds_items(namespace):
            return
        try:  # only the version seen empty: a put since then moved it, and keeps the namespace listed
            self.dynamodb.delete_item(
                TableName=self.table,
                Key=namespace_key(namespace),
                ConditionExpression="v = :v",
                ExpressionAttributeValues={":v": marker["v"]},
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            logger.debug("namespace %s got a put while emptied; kept", namespace)

    def _holds_items(self, namespace: tuple[str, ...]) -> bool:
        request = {
            "TableName": self.table,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :here)",
            "FilterExpression": _NOT_EXPIRED,
            "ProjectionExpression": "pk",
            "ExpressionAttributeValues": {
                ":pk": s(_label(namespace[0])),
                ":here": s(_path(namespace[1:]) + _KEY_MARK),
                ":now": {"N": repr(self._now_ms())},
            },
        }
        return next(paginate(self.dynamodb.query, **request), None) is not None

    def _delete_objects(self, keys: list[str]) -> None:
        self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _expiry(expires_ms: float) -> dict[str, dict[str, str]]:
    """DynamoDB's TTL attribute (whole seconds, rounded up) and the exact expiry reads check."""
    return {"expires_at": {"N": str(math.ceil(expires_ms / 1000))}, "expires_ms": {"N": repr(float(expires_ms))}}


def _values(expiry: dict[str, dict[str, str]]) -> DynamoItem:
    return {":at": expiry["expires_at"], ":ms": expiry["expires_ms"]}


def _best_score(query: list[float], vectors: list[list[float]]) -> float | None:
    """The best cosine similarity of any of an item's field vectors (None: it has none)."""
    if not vectors:
        return None
    q_norm = math.sqrt(sum(x * x for x in query))
    best = -math.inf
    for vector in vectors:
        norm = math.sqrt(sum(x * x for x in vector))
        score = sum(a * b for a, b in zip(query, vector, strict=False)) / (q_norm * norm) if q_norm and norm else 0.0
        best = max(best, score)
    return best


def _does_match(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = condition.path
    if len(namespace) < len(path):
        return False
    pairs = zip(namespace, path) if condition.match_type == "prefix" else zip(reversed(namespace), reversed(path))
    return all(wanted == "*" or label == wanted for label, wanted in pairs)


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda a, b: bool(a == b),
    "$ne": lambda a, b: bool(a != b),
    "$gt": lambda a, b: float(a) > float(b),
    "$gte": lambda a, b: float(a) >= float(b),
    "$lt": lambda a, b: float(a) < float(b),
    "$lte": lambda a, b: float(a) <= float(b),
    # Beyond LangGraph's stores: what an auth handler's filter may hold (`@auth.on.store`).
    "$contains": lambda a, b: isinstance(a, list) and all(x in a for x in (b if isinstance(b, list) else [b])),
}


def _passes(value: dict[str, Any], filter: dict[str, Any]) -> bool:
    """Whether a value passes a search filter: every field's condition, and each of `$and`'s
    filters (how the API adds an auth handler's filter to the caller's)."""
    for field, condition in filter.items():
        if field == "$and":
            if not isinstance(condition, list) or not all(isinstance(f, dict) for f in condition):
                raise ValueError("filter: $and takes a list of filters")
            if not all(_passes(value, f) for f in condition):
                return False
        elif not _matches(value.get(field), condition):
            return False
    return True


def _matches(held: Any, wanted: Any) -> bool:
    """A search filter's condition on one field, as LangGraph's stores read it: equality (nested
    objects and lists compared field by field) or an object of `$eq`, `$ne`, `$gt`, `$gte`,
    `$lt`, `$lte`. A comparison with a missing or non-numeric value does not match."""
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            for op, operand in wanted.items():
                compare = _OPERATORS.get(op)
                if compare is None:
                    raise ValueError(f"unsupported filter operator {op!r}: use {', '.join(_OPERATORS)}")
                try:
                    if not compare(held, operand):
                        return False
                except (TypeError, ValueError):
                    return False
            return True
        return isinstance(held, dict) and all(_matches(held.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(held, (list, tuple))
            and len(held) == len(wanted)
            and all(_matches(h, w) for h, w in zip(held, wanted, strict=True))
        )
    return bool(held == wanted)
