"""Listing a table's resources without a Scan: threads and assistants carry a `listing` shard and
their `created_at` at the top level of their item, and the table's `listing` index (template.yaml)
orders each shard by creation. A listing merges the shards' Queries, page by page as it is read, so
the API's default order (newest first) reads only as far as the page it answers.

Shards, not one constant key: every write of a listed item is also a write of its index partition,
and one partition key takes about 1,000 writes a second.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterator
from typing import Any

from stepgraph.storage.dynamo import Item, paginate, s

__all__ = ["LISTING_INDEX", "count_listed", "listed", "listing_attributes"]

LISTING_INDEX = "listing"
_SHARDS = 4
_PAGE_MAX = 1000  # items a request asks for at most (a deep page is read in several)


def listing_attributes(resource_id: str, created_at: str) -> Item:
    """The attributes that put an item in the listing index."""
    return {"listing": s(str(zlib.crc32(resource_id.encode()) % _SHARDS)), "created_at": s(created_at)}


def _shard(client: Any, table: str, shard: int, newest_first: bool, page: int, **request: Any) -> Iterator[Item]:
    return paginate(
        client.query,
        TableName=table,
        IndexName=LISTING_INDEX,
        KeyConditionExpression="listing = :l",
        ExpressionAttributeValues={":l": s(str(shard))},
        ScanIndexForward=not newest_first,
        **({"Limit": min(page, _PAGE_MAX)} if page else {}),
        **request,
    )


def listed(client: Any, table: str, *, newest_first: bool = True, page: int = 0) -> Iterator[Item]:
    """Every listed item of `table`, ordered by `created_at` (newest first, or oldest first), read
    lazily: `page` items a request per shard (0: as many as DynamoDB returns). The index is
    eventually consistent: an item written a moment ago may not be listed yet."""
    shards = [_shard(client, table, n, newest_first, page) for n in range(_SHARDS)]
    return heapq.merge(*shards, key=lambda item: item["created_at"]["S"], reverse=newest_first)


def count_listed(client: Any, table: str) -> int:
    """How many items the listing index holds (DynamoDB counts; no item is returned)."""
    total = 0
    for n in range(_SHARDS):
        request: dict[str, Any] = {
            "TableName": table,
            "IndexName": LISTING_INDEX,
            "KeyConditionExpression": "listing = :l",
            "ExpressionAttributeValues": {":l": s(str(n))},
            "Select": "COUNT",
        }
        while True:
            resp = client.query(**request)
            total += int(resp.get("Count", 0))
            if "LastEvaluatedKey" not in resp:
                break
            request["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
    return total
