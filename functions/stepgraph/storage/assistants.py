"""Assistants and their versions, in the assistants table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from stepgraph.storage.documents import Document, doc_item, documents, from_item, now_iso
from stepgraph.storage.dynamo import Item, is_conditional_failure, paginate, s
from stepgraph.storage.listing import count_listed, listed, listing_attributes

__all__ = ["AssistantStore"]


class AssistantStore:
    """Assistants: item sk="A" is the current version, sk="v#<n>" the history."""

    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table

    def put(self, doc: Document, *, if_absent: bool = False) -> bool:
        """Write the current version and its history item together. With `if_absent`, False if
        the assistant exists already."""
        kwargs: dict[str, Any] = {}
        if if_absent:
            kwargs["ConditionExpression"] = "attribute_not_exists(assistant_id)"
        current = {
            **doc_item(doc),
            **listing_attributes(doc["assistant_id"], doc.get("created_at") or now_iso()),
            "assistant_id": s(doc["assistant_id"]),
            "sk": s("A"),
        }
        version = {**doc_item(doc), "assistant_id": s(doc["assistant_id"]), "sk": s(f"v#{doc['version']:010d}")}
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self.table, "Item": current, **kwargs}},
                    {"Put": {"TableName": self.table, "Item": version}},
                ]
            )
        except ClientError as exc:
            if if_absent and is_conditional_failure(exc):
                return False
            raise
        return True

    def get(self, assistant_id: str) -> Document | None:
        resp = self.client.get_item(TableName=self.table, Key=self._key(assistant_id, "A"), ConsistentRead=True)
        return from_item(resp.get("Item"))

    def versions(self, assistant_id: str) -> list[Document]:
        """Newest first."""
        items = self._query(
            KeyConditionExpression="assistant_id = :a AND begins_with(sk, :v)",
            ExpressionAttributeValues={":a": s(assistant_id), ":v": s("v#")},
            ScanIndexForward=False,
        )
        return documents(items)

    def listed(self, *, newest_first: bool = True, page: int = 0) -> Iterator[Document]:
        """Every assistant (its current version) by creation time, read lazily from the listing
        index (`listing.listed`)."""
        for item in listed(self.client, self.table, newest_first=newest_first, page=page):
            doc = from_item(item)
            if doc is not None:
                yield doc

    def all(self) -> list[Document]:
        """Every assistant, newest first (from the index: no Scan)."""
        return list(self.listed())

    def count(self) -> int:
        return count_listed(self.client, self.table)

    def delete(self, assistant_id: str) -> bool:
        """Delete the assistant and its versions; False if there was none."""
        items = self._query(
            KeyConditionExpression="assistant_id = :a",
            ExpressionAttributeValues={":a": s(assistant_id)},
            ProjectionExpression="assistant_id, sk",
        )
        keys = [{"assistant_id": i["assistant_id"], "sk": i["sk"]} for i in items]
        for key in keys:
            self.client.delete_item(TableName=self.table, Key=key)
        return bool(keys)

    def _key(self, assistant_id: str, sk: str) -> Item:
        return {"assistant_id": s(assistant_id), "sk": s(sk)}

    def _query(self, **request: Any) -> Iterator[Item]:
        return paginate(self.client.query, TableName=self.table, ConsistentRead=True, **request)
