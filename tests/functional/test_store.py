"""The long-term store (`DynamoDBStore`) against moto, with its table built from template.yaml:
each `BaseStore` method, sync and async, as LangGraph's stores behave (langgraph ships no store
conformance suite to run instead), plus what is particular to DynamoDB: TTL read past DynamoDB's
lazy deletion, namespace markers under racing puts and deletes, values spilled to S3, and that
no read is a Scan."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from langgraph.store.base import GetOp, InvalidNamespaceError, ListNamespacesOp, MatchCondition, PutOp, SearchOp
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from stepgraph.storage import DynamoDBStore
from stepgraph_local.template import TEMPLATE, load_template

REGION, TABLE, BUCKET = "us-east-1", "StoreTable", "spill"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def letters(texts: list[str]) -> list[list[float]]:
    """A deterministic embedding: how often each letter a-z occurs."""
    return [[float(t.lower().count(chr(ord("a") + i))) for i in range(26)] for t in texts]


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[Any, Any]]:
    # One emulated account for the module (starting moto costs more than the tests); each test
    # gets a table and a bucket of its own.
    with pytest.MonkeyPatch.context() as patch:
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.setenv(var, "testing")
        with mock_aws():
            yield boto3.client("dynamodb", region_name=REGION), boto3.client("s3", region_name=REGION)


@pytest.fixture
def aws(moto: tuple[Any, Any]) -> Iterator[Any]:
    ddb, s3 = moto
    props = load_template(TEMPLATE)["Resources"]["StoreTable"]["Properties"]
    ddb.create_table(
        TableName=TABLE,
        BillingMode=props["BillingMode"],
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
    )
    s3.create_bucket(Bucket=BUCKET)
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    ddb.meta.events.register("before-call.dynamodb", record)
    yield ddb, s3, calls
    ddb.meta.events.unregister("before-call.dynamodb", record)
    ddb.delete_table(TableName=TABLE)
    for key in objects((ddb, s3)):
        s3.delete_object(Bucket=BUCKET, Key=key)
    s3.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_store(aws: Any, clock: Clock, **kwargs: Any) -> DynamoDBStore:
    ddb, s3, _ = aws
    return DynamoDBStore(ddb, TABLE, s3_client=s3, bucket=BUCKET, clock=clock, spill_threshold_bytes=1_000, **kwargs)


def objects(aws: Any) -> list[str]:
    return [o["Key"] for o in aws[1].list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_put_get_update_delete(aws, clock):
    store = make_store(aws, clock)
    assert store.get(("users", "u1"), "k") is None
    store.put(("users", "u1"), "k", {"name": "Ada", "n": 1})
    first = store.get(("users", "u1"), "k")
    assert first is not None
    assert (first.namespace, first.key, first.value) == (("users", "u1"), "k", {"name": "Ada", "n": 1})
    clock.now += 5
    store.put(("users", "u1"), "k", {"name": "Ada", "n": 2})
    second = store.get(("users", "u1"), "k")
    assert second is not None and second.value["n"] == 2
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    # Keys and labels that look like the layout's separators stay apart.
    store.put(("users",), "u1/|k", {"other": True})
    store.put(("users", "u1|"), "k", {"other": True})
    assert store.get(("users", "u1"), "k").value["n"] == 2  # type: ignore[union-attr]
    store.delete(("users", "u1"), "k")
    assert store.get(("users", "u1"), "k") is None
    store.delete(("users", "u1"), "k")  # deleting what is gone is no error
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {})
    with pytest.raises(InvalidNamespaceError):
        store.put((), "k", {})
    with pytest.raises(InvalidNamespaceError):
        store.put(("langgraph",), "k", {})


def test_search_by_prefix_and_filter_with_queries_only(aws, clock):
    store = make_store(aws, clock)
    puts = [(("docs", "a"), 1), (("docs", "a", "x"), 5), (("docs", "ab"), 9), (("other",), 7)]
    for i, (ns, score) in enumerate(puts):
        clock.now += 1
        store.put(ns, f"k{i}", {"score": score, "tag": "t" if score > 2 else "u", "meta": {"lang": "en"}})
    calls = aws[2]
    calls.clear()
    under_a = store.search(("docs", "a"))
    # newest first
    assert [(i.namespace, i.key) for i in under_a] == [(("docs", "a", "x"), "k1"), (("docs", "a"), "k0")]
    assert {i.key for i in store.search(("docs",))} == {"k0", "k1", "k2"}
    assert {i.key for i in store.search(())} == {"k0", "k1", "k2", "k3"}
    assert [i.key for i in store.search(("docs",), filter={"score": {"$gt": 1, "$lte": 5}})] == ["k1"]
    assert {i.key for i in store.search(("docs",), filter={"tag": "t"})} == {"k1", "k2"}
    assert {i.key for i in store.search(("docs",), filter={"tag": {"$ne": "t"}})} == {"k0"}
    assert {i.key for i in store.search(("docs",), filter={"score": {"$lt": 5}, "meta": {"lang": "en"}})} == {"k0"}
    assert {i.key for i in store.search(("docs",), filter={"score": {"$gte": 9}})} == {"k2"}
    assert {i.key for i in store.search(("docs",), filter={"score": {"$eq": 7}})} == set()
    assert [i.key for i in store.search(("docs",), limit=1, offset=1)] == ["k1"]
    # How the API adds an auth handler's filter ($eq / $contains) to the caller's: both hold.
    store.put(("docs", "owned"), "k4", {"score": 9, "owners": ["ann", "bo"]})
    both = {"$and": [{"score": {"$gte": 5}}, {"owners": {"$contains": "ann"}}]}
    assert [i.key for i in store.search(("docs",), filter=both)] == ["k4"]
    with pytest.raises(ValueError, match=r"\$and"):
        store.search(("docs",), filter={"$and": {"score": 9}})
    with pytest.raises(ValueError, match="unsupported filter operator"):
        store.search(("docs",), filter={"score": {"$in": [9]}})
    assert "Scan" not in calls and "Query" in calls


def test_list_namespaces(aws, clock):
    store = make_store(aws, clock)
    for ns in [("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("b", "c"), ("b", "c", "e")]:
        store.put(ns, "k", {"v": 1})
    assert store.list_namespaces() == [("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("b", "c"), ("b", "c", "e")]
    assert store.list_namespaces(prefix=("a",)) == [("a", "b", "c"), ("a", "b", "d"), ("a", "x")]
    assert store.list_namespaces(prefix=("a", "*", "d")) == [("a", "b", "d")]
    assert store.list_namespaces(suffix=("c",)) == [("a", "b", "c"), ("b", "c")]
    assert store.list_namespaces(max_depth=2) == [("a", "b"), ("a", "x"), ("b", "c")]
    assert store.list_namespaces(prefix=("a",), max_depth=1) == [("a",)]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d"), ("a", "x")]
    # A namespace goes once its last item does; the others stay.
    store.put(("a", "x"), "k2", {"v": 2})
    store.delete(("a", "x"), "k")
    assert ("a", "x") in store.list_namespaces()
    store.delete(("a", "x"), "k2")
    assert ("a", "x") not in store.list_namespaces(prefix=("a",))
    assert ("b", "c") in store.list_namespaces()  # deleting nothing there changes nothing


def test_racing_puts_and_deletes_keep_namespace_listing_true(aws, clock, monkeypatch):
    # moto applies a transaction with no lock (and rolls back by restoring a snapshot of the
    # table); DynamoDB serializes the writes to an item. One lock models that.
    lock = threading.RLock()
    for name in ("transact_write_items", "put_item", "update_item", "delete_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)
    store = make_store(aws, clock)
    ns = ("race",)
    barrier = threading.Barrier(4)

    def churn(worker: int) -> None:
        barrier.wait()
        for n in range(6):
            store.put(ns, f"{worker}-{n}", {"n": n})
            if n % 2 == 0 or worker % 2 == 0:
                store.delete(ns, f"{worker}-{n}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(churn, range(4)))
    remaining = store.search(ns, limit=100)
    assert remaining  # workers 1 and 3 kept their odd items
    assert store.list_namespaces() == [ns]
    for item in remaining:
        store.delete(ns, item.key)
    assert store.list_namespaces() == []


def test_ttl_expires_on_read_and_refreshes(aws, clock):
    store = make_store(aws, clock, ttl={"refresh_on_read": True})
    store.put(("t",), "short", {"v": 1}, ttl=1)  # minutes
    store.put(("t",), "long", {"v": 2}, ttl=10)
    store.put(("t",), "brief", {"v": 5}, ttl=1)  # the namespace already outlives it: only its version moves
    assert store.get(("t",), "brief") is not None
    store.put(("u",), "gone", {"v": 3}, ttl=1)
    clock.now += 50
    assert store.get(("t",), "short", refresh_ttl=False) is not None
    assert store.get(("t",), "short") is not None  # refreshed: another minute from now
    clock.now += 50  # 100 s after the put: expired unless refreshed
    assert store.get(("t",), "short", refresh_ttl=False) is not None
    assert store.get(("u",), "gone") is None  # still in the table: DynamoDB deletes late
    assert {i.key for i in store.search(("t",), refresh_ttl=False)} == {"short", "long"}  # brief expired
    assert store.list_namespaces() == [("t",)]  # the namespace of expired items is not listed
    clock.now += 60
    assert store.get(("t",), "short") is None
    assert [i.key for i in store.search(("t",))] == ["long"]
    raw = aws[0].get_item(TableName=TABLE, Key={"pk": {"S": "t"}, "sk": {"S": "|long"}})["Item"]
    assert int(raw["expires_at"]["N"]) >= clock.now  # DynamoDB's TTL attribute, in seconds
    # Put again after expiry: a new item (created now), with no TTL the namespace stays.
    store.put(("u",), "gone", {"v": 4})
    again = store.get(("u",), "gone")
    assert again is not None and again.created_at.timestamp() == clock.now
    clock.now += 10_000
    assert store.list_namespaces() == [("u",)]


def test_large_values_spill_to_s3_and_go_with_their_item(aws, clock):
    store = make_store(aws, clock)
    big = {"text": "x" * 5_000}
    store.put(("big",), "k", big)
    assert len(objects(aws)) == 1
    assert store.get(("big",), "k").value == big  # type: ignore[union-attr]
    assert store.search(("big",))[0].value == big
    store.put(("big",), "k", {"text": "y" * 5_000})  # the replaced version's object goes
    assert len(objects(aws)) == 1 and store.get(("big",), "k").value["text"][0] == "y"  # type: ignore[union-attr]
    store.put(("big",), "k", {"small": True})
    assert objects(aws) == []
    store.put(("big",), "k", big)
    store.delete(("big",), "k")
    assert objects(aws) == []


def test_semantic_search_ranks_nearest_first(aws, clock):
    store = make_store(aws, clock, index={"dims": 26, "embed": letters, "fields": ["text"]})
    store.put(("docs",), "zoo", {"text": "zebra zoo buzz"})
    store.put(("docs",), "apple", {"text": "apple pie"})
    store.put(("docs",), "banana", {"text": "banana bread"})
    store.put(("docs",), "plain", {"text": "apple apple apple"}, index=False)  # kept, but never embedded
    store.put(("docs", "deep"), "pear", {"text": "pear pie"})
    results = store.search(("docs",), query="apple pies")
    assert [r.key for r in results][:2] == ["apple", "pear"]
    assert results[0].score is not None and results[0].score > results[1].score  # type: ignore[operator]
    assert results[-1].key == "plain" and results[-1].score is None
    assert [r.key for r in store.search(("docs",), query="zzz buzz", limit=1)] == ["zoo"]
    assert [r.key for r in store.search(("docs", "deep"), query="apple")] == ["pear"]
    assert [r.key for r in store.search(("docs",), query="apple", filter={"text": "banana bread"})] == ["banana"]
    # A put naming its own fields embeds those.
    store.put(("docs",), "fields", {"text": "zzzz", "title": "apple"}, index=["title"])
    assert store.search(("docs",), query="apple", limit=1)[0].key in {"apple", "fields"}
    # More vectors than an item holds (the threshold here: 1,000 bytes; 104 a vector) are refused.
    with pytest.raises(ValueError, match="index fewer fields"):
        store.put(("docs",), "many", {"parts": [{"t": f"part {n}"} for n in range(10)]}, index=["parts[*].t"])
    assert store.get(("docs",), "many") is None


def test_async_methods_and_batches(aws, clock):
    async def embed(texts: list[str]) -> list[list[float]]:
        return letters(texts)

    store = make_store(aws, clock, index={"dims": 26, "embed": embed})

    async def scenario() -> None:
        await store.aput(("a", "b"), "k", {"text": "hello"})
        got = await store.aget(("a", "b"), "k")
        assert got is not None and got.value == {"text": "hello"}
        found = await store.asearch(("a",), query="hello")
        assert [i.key for i in found] == ["k"] and found[0].score is not None  # the whole value ("$") embedded
        assert await store.alist_namespaces(prefix=("a",)) == [("a", "b")]
        results = await store.abatch(
            [
                PutOp(("a", "c"), "k2", {"text": "x"}),
                GetOp(("a", "c"), "k2"),
                SearchOp(("a",), limit=10),
                ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("a",)),), max_depth=2),
                PutOp(("a", "b"), "k", None),
            ]
        )
        assert results[1].value == {"text": "x"}  # type: ignore[union-attr]
        assert {i.key for i in results[2]} == {"k", "k2"}  # type: ignore[union-attr]
        assert results[3] == [("a", "b"), ("a", "c")]
        await store.adelete(("a", "c"), "k2")
        assert await store.alist_namespaces() == []

    asyncio.run(scenario())
    assert store.batch([GetOp(("a", "b"), "k")]) == [None]
