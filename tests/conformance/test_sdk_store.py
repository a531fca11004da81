"""The long-term store through langgraph-sdk (`client.store`), on the test graphs' server, whose
langgraph.json sets `store.index` with a deterministic embedding (tests/graphs/memory.py): items
put, read, searched, listed, deleted and expired through the API; a graph node writes to
`runtime.store` and reads with `get_store()`, and what either side writes the other reads."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import Server
from langgraph_sdk import get_client

pytestmark = pytest.mark.asyncio(loop_scope="function")

GRAPHS = Path(__file__).resolve().parents[1] / "graphs" / "langgraph.json"


@pytest.fixture(scope="module")
def store_server() -> Iterator[Server]:
    # One server: the store routes do not depend on the nodes' flavour, and the memory graphs
    # come in both (`memory` sync, `amemory` async).
    srv = Server(config=GRAPHS).wait_ready()
    yield srv
    srv.stop()


def fresh() -> str:
    """A first label of our own: tests share the server's store."""
    return f"t{uuid.uuid4().hex[:12]}"


async def test_items_through_the_api(store_server):
    client = get_client(url=store_server.url)
    root = fresh()
    assert await client.store.get_item([root, "a"], "missing") is None  # the peer's 200 null
    await client.store.put_item([root, "a"], "k1", {"text": "first", "n": 1})
    await client.store.put_item([root, "a", "deep"], "k2", {"text": "second", "n": 2})
    await client.store.put_item([root, "ab"], "k3", {"text": "third", "n": 3})
    item = await client.store.get_item([root, "a"], "k1")
    assert (item["namespace"], item["key"], item["value"]) == ([root, "a"], "k1", {"text": "first", "n": 1})
    assert item["created_at"] and item["updated_at"]

    found = await client.store.search_items([root, "a"])
    assert {i["key"] for i in found["items"]} == {"k1", "k2"}
    assert [i["key"] for i in (await client.store.search_items([root], filter={"n": {"$gte": 2}}))["items"]] in (
        ["k3", "k2"],
        ["k2", "k3"],
    )
    assert [i["key"] for i in (await client.store.search_items([root], filter={"text": "third"}))["items"]] == ["k3"]
    assert len((await client.store.search_items([root], limit=2))["items"]) == 2
    assert len((await client.store.search_items([root], limit=2, offset=2))["items"]) == 1

    listed = await client.store.list_namespaces(prefix=[root])
    assert listed == {"namespaces": [[root, "a"], [root, "a", "deep"], [root, "ab"]]}
    assert (await client.store.list_namespaces(prefix=[root], max_depth=2))["namespaces"] == [[root, "a"], [root, "ab"]]
    assert (await client.store.list_namespaces(prefix=[root], suffix=["deep"]))["namespaces"] == [[root, "a", "deep"]]

    # A value over DynamoDB's item limit is kept (in S3) and read back whole.
    big = {"text": "x" * 420_000}
    await client.store.put_item([root, "big"], "k", big)
    assert (await client.store.get_item([root, "big"], "k"))["value"] == big
    await client.store.delete_item([root, "big"], "k")

    await client.store.delete_item([root, "a", "deep"], "k2")
    assert await client.store.get_item([root, "a", "deep"], "k2") is None
    assert [root, "a", "deep"] not in (await client.store.list_namespaces(prefix=[root]))["namespaces"]

    # Bad input is a 4xx with {"detail"}, as on the peer; nothing is written.
    async with httpx.AsyncClient(base_url=store_server.url) as http:
        for body in (
            {"namespace": [root, ""], "key": "k", "value": {}},
            {"namespace": [root, "x.y"], "key": "k", "value": {}},
            {"namespace": [], "key": "k", "value": {}},
            {"namespace": ["langgraph"], "key": "k", "value": {}},
            {"namespace": [root], "key": "k" * 1100, "value": {}},  # over DynamoDB's sort key
            {"namespace": [root], "key": "k", "value": {}, "ttl": -1},
        ):
            refused = await http.put("/store/items", json=body)
            assert refused.status_code == 422 and "detail" in refused.json(), body
        assert (await http.put("/store/items", json={"namespace": [root], "key": "k", "value": 3})).status_code == 422
        assert (await http.get("/store/items", params={"namespace": root})).status_code == 400
        bad_filter = await http.post(
            "/store/items/search", json={"namespace_prefix": [root], "filter": {"n": {"$in": [1]}}}
        )
        assert bad_filter.status_code == 422 and "$in" in bad_filter.json()["detail"]
    assert (await client.store.list_namespaces(prefix=[root]))["namespaces"] == [[root, "a"], [root, "ab"]]


async def test_items_expire_after_their_ttl(store_server):
    client = get_client(url=store_server.url)
    root = fresh()
    await client.store.put_item([root], "brief", {"v": 1}, ttl=0.01)  # minutes: 0.6 s
    await client.store.put_item([root], "kept", {"v": 2})
    assert (await client.store.get_item([root], "brief", refresh_ttl=False))["value"] == {"v": 1}
    deadline = time.monotonic() + 10
    while await client.store.get_item([root], "brief", refresh_ttl=False) is not None:
        assert time.monotonic() < deadline, "the item never expired"
        await asyncio.sleep(0.1)
    assert [i["key"] for i in (await client.store.search_items([root]))["items"]] == ["kept"]


async def test_semantic_search_ranks_the_nearest_first(store_server):
    client = get_client(url=store_server.url)
    root = fresh()
    for key, text in {"zoo": "zebra zoo buzz", "pie": "apple pie", "bread": "banana bread"}.items():
        await client.store.put_item([root, "docs"], key, {"text": text})
    await client.store.put_item([root, "docs"], "unindexed", {"text": "apple pie"}, index=False)
    ranked = (await client.store.search_items([root], query="apple pies"))["items"]
    assert [i["key"] for i in ranked][:2] == ["pie", "bread"]
    assert ranked[0]["score"] > ranked[1]["score"] > ranked[2]["score"]
    assert (ranked[-1]["key"], ranked[-1]["score"]) == ("unindexed", None)
    assert [i["key"] for i in (await client.store.search_items([root], query="buzz zz", limit=1))["items"]] == ["zoo"]


@pytest.mark.parametrize("graph", ["memory", "amemory"])
async def test_a_node_writes_and_reads_the_store(store_server, graph):
    client = get_client(url=store_server.url)
    user = fresh()
    # What the API writes, the node reads; what the node writes, the API reads.
    await client.store.put_item(["profile", user], "prefs", {"theme": "dark"})
    first = await client.runs.wait(None, graph, input={"user": user, "remember": "apple pie"})
    assert (first["stored"], first["nearest"], first["seen"]) == ({"theme": "dark"}, "apple pie", ["apple pie"])
    second = await client.runs.wait(None, graph, input={"user": user, "remember": "zebra zoo", "query": "apples"})
    assert (second["nearest"], second["seen"]) == ("apple pie", ["apple pie", "zebra zoo"])
    written = (await client.store.search_items(["memories", user]))["items"]
    assert sorted((i["key"], i["value"]["text"]) for i in written) == [("fact-0", "apple pie"), ("fact-1", "zebra zoo")]
    assert (await client.store.list_namespaces(prefix=["memories", user]))["namespaces"] == [["memories", user]]
